"""The HTML report, built from a run directory's tables alone (torch-free): `report.page.write_report`."""
