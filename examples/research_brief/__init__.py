"""Research brief: an example production graph with slow search tools and an expensive LLM."""
