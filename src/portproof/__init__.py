"""portproof."""
