"""The crisis detector's data, its training and its evaluation (docs/safety.md).

data/train*.jsonl and data/eval.jsonl were written for this project and are kept strictly apart:
`python -m safety.train` fine-tunes the model on the first (proxy/policies/crisis/model/);
`python -m safety.evaluate` measures the whole detector, rules and model, on the second.
"""
