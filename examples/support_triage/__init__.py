"""Support-ticket triage: an example production graph with simulated LLM and service nodes."""
