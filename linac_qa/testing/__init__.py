"""Test data and fault injection for the tests, the demo and the benchmarks; never imported by
production code (the production side of fault injection is `linac_qa.checkpoints`)."""
