"""Media path benchmark: RTP forwarding against decode/re-encode."""
