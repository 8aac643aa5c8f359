"""`twofold chips` (placeholder until the hardware catalog lands)."""
