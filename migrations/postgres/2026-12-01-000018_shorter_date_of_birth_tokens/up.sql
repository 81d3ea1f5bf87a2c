-- A date of birth's blind-index token is 6 bits shorter than the longest other token of its
-- patient (client-crypto's BlindIndexField::index_bits). Every record keeps the year of birth
-- in clear, and beside it a full-length token all but named the date: the patients of one
-- year who shared a token shared, with near certainty, the date itself. The clients now index
-- the date at that length and search with the year as a filter; the server refuses longer
-- tokens (blind_index_too_long). The tokens stored before are shortened here: a shorter token
-- is the longer one's first bits, so no key is needed.
--
-- A token is lowercase hex: version (2 digits), field (2; '04' is the date of birth), key
-- version (8), bits (2), then the value's first `bits` bits, left-aligned in whole bytes.
-- For a new length n: the bits byte, the value's first n / 4 digits, the next digit with only
-- its top n % 4 bits kept, and zero digits up to whole bytes. A patient whose date token is
-- already short enough, or who has no other token, keeps it.
UPDATE patient_blind_indexes
SET token = shortened.new_token
FROM (
    SELECT dob.patient_id, dob.token AS old_token,
        substr(dob.token, 1, 12)
        || substr('0123456789abcdef', n / 16 + 1, 1) || substr('0123456789abcdef', n % 16 + 1, 1)
        || substr(dob.token, 15, n / 4)
        || CASE WHEN n % 4 = 0 THEN '' ELSE substr('0123456789abcdef',
               (strpos('0123456789abcdef', substr(dob.token, 15 + n / 4, 1)) - 1) / (1 << (4 - n % 4)) * (1 << (4 - n % 4)) + 1, 1)
           END
        || substr('0000000000000000', 1, 2 * ((n + 7) / 8) - (n + 3) / 4) AS new_token
    FROM (
        SELECT patient_id, token, ((strpos('0123456789abcdef', substr(token, 13, 1)) - 1) * 16 + (strpos('0123456789abcdef', substr(token, 14, 1)) - 1)) AS bits
        FROM patient_blind_indexes WHERE substr(token, 3, 2) = '04'
    ) AS dob
    JOIN (
        SELECT patient_id, greatest(1, max(((strpos('0123456789abcdef', substr(token, 13, 1)) - 1) * 16 + (strpos('0123456789abcdef', substr(token, 14, 1)) - 1))) - 6) AS n
        FROM patient_blind_indexes WHERE substr(token, 3, 2) <> '04'
        GROUP BY patient_id
    ) AS others ON others.patient_id = dob.patient_id
    WHERE dob.bits > others.n
) AS shortened
WHERE patient_blind_indexes.patient_id = shortened.patient_id
  AND patient_blind_indexes.token = shortened.old_token;
