DROP INDEX observations_sealed_notes;
