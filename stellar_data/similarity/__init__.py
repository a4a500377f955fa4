"""Similarity: the form in which records and eval questions are compared, and what is computed on it.

- fold.py: text folded (NFKC, lower case, t2s, punctuation dropped) into token hashes and n-grams.
- records.py: how a record is folded, one rule for the ingest workers and the global steps.
- minhash.py: MinHash signatures and their LSH bands (near-duplicates).
- eval_index.py: eval questions as n-gram hashes, and the index the workers look records up in.
- eval_sets.py: the declared eval set files, read with the generic source readers.
"""
