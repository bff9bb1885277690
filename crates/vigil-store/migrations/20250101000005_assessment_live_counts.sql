-- Endpoints per status known so far while an assessment runs (JSON of
-- vigil_core's StatusCounts); the stored endpoints count once it is done.
ALTER TABLE compliance_assessments ADD COLUMN live_counts TEXT;
