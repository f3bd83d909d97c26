"""One module per study; each declares a `STUDY` (`studies.base.Study`). `studies.registry` lists them in order."""
