"""Stage 4 of the workbook: compound scaling toward latency targets (`compound`)."""
