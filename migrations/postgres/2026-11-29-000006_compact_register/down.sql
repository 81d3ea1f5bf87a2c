-- The passports taken out of the history's snapshots do not come back.
SELECT 1;
