"""Care for people in crisis: detect risk in the latest message before generation, refer to help.

Layers: transparent rules for the unmistakable (rules.py), then all-MiniLM-L6-v2 fine-tuned to read
risk, run with onnxruntime (model.py; trained by safety/train.py), put together in detector.py; what
follows a verdict under each policy in care.py; the resources message per region in resources.py.
docs/safety.md is the published protocol.
"""
