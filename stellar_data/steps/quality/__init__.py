"""Quality steps: record-local steps that refuse text which teaches a model nothing or the wrong
thing, each with its reason and evidence (base.py is their contract). One file per step; each is
turned on by its recipe table `[filters.<name>]`."""
