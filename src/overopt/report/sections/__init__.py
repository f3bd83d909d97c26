"""One report section per study, each a function from the run's tables (`report.page_context.Page`) to HTML."""
