package pginbox

// Queued returns how many inserts wait for the batching writer.
func (s *Store) Queued() int { return len(s.reqs) }
