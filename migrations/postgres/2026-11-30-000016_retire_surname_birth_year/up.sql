-- The compound blind index of surname and year of birth (field id 8, a token's third and
-- fourth hex digits) is retired. The birth year is kept in clear on every record, so beside it
-- this token told which patients born in the same year share a surname: far more than a
-- truncated index may say (each value should match several patients). A search by surname and
-- year of birth is now the surname's token and the birth_year filter; the server refuses new
-- tokens of this field. The tokens stored are deleted: nothing else reads them.
DELETE FROM patient_blind_indexes WHERE substr(token, 3, 2) = '08';
