DROP TABLE issued_reports;
