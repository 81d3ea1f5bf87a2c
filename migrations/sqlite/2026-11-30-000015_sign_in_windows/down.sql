DROP TABLE sign_in_windows;
