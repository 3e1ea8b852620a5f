"""jaxopt_study: run, measure and look at chapter 8 of Goodfellow, Bengio & Courville (2016)."""

__version__ = "0.1.0"
