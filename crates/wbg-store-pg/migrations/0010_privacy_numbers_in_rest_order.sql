-- the free number rested longest is found by walking the numbers in service in the order they rested (never bound first, then by when they were bound) and stopping at the first free one, not by joining the whole pool to the waybills and sorting it for every binding
CREATE INDEX IF NOT EXISTS privacy_numbers_rest ON privacy_numbers ((bound_at IS NOT NULL), bound_at) WHERE NOT retired;
