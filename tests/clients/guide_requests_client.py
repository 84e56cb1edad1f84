# The guide's "Test with Python" client, unchanged except that the URL comes from argv.
import sys

import requests
import json

url = sys.argv[1]

response = requests.post(
    url,
    json={
        "message": "I've been feeling stressed about work",
        "max_tokens": 256,
        "temperature": 0.7
    },
    stream=True
)

for line in response.iter_lines():
    if line:
        decoded = line.decode()
        if decoded.startswith("data: "):
            data = json.loads(decoded[6:])  # Remove "data: " prefix
            if not data.get("done"):
                print(data["token"], end="", flush=True)
            else:
                print("\n[Stream complete]")
