-- The champion model's version and card (JSON text) for the run report.
-- Bound parameters: none (the report passes :d to every query; this one does not use it).
SELECT model_version, card FROM model_registry WHERE status = 'champion'
