"""The builder's version: recorded in every report and part of every build's fingerprint (pyproject reads it)."""

__version__ = "0.1.5"  # 0.1.5: the rigid fit draws its point subsets vectorised, brightness matching fits on every 4th blurred pixel (speed; rows change within noise); 0.1.4: crops brightness-matched to the onset before flow, an inferred AU moves its own region its way; 0.1.3: contradicted = no motion along the AU; 0.1.2: explain_motion tries every AU; 0.1.1: a labelled AU pooled over its regions
