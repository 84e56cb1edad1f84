// The guide's "Test with JavaScript/Frontend" client, run with node. The snippet between the
// markers is the guide's, unchanged except that the URL comes from argv; a minimal `document`
// stands in for the page, and its text is printed at the end.
const responseElement = { textContent: "" };
globalThis.document = { getElementById: (id) => (id === "response" ? responseElement : null) };

// --- guide snippet ---
const url = process.argv[2];

const response = await fetch(url, {
  method: "POST",
  headers: {
    "Content-Type": "application/json",
  },
  body: JSON.stringify({
    message: "I feel anxious",
    max_tokens: 256,
  }),
});

const reader = response.body.getReader();
const decoder = new TextDecoder();

while (true) {
  const { done, value } = await reader.read();
  if (done) break;
  
  const chunk = decoder.decode(value);
  const lines = chunk.split("\n");
  
  for (const line of lines) {
    if (line.startsWith("data: ")) {
      const data = JSON.parse(line.slice(6));
      if (!data.done) {
        // Append token to UI
        document.getElementById("response").textContent += data.token;
      }
    }
  }
}
// --- end of guide snippet ---

process.stdout.write(responseElement.textContent);
