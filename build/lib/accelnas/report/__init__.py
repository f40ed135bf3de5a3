"""Stage 5 of the workbook: Pareto fronts (`pareto`), the comparison with the baselines
(`comparison`) and the offline HTML report (`html`)."""
