/** Copy-paste snippets that use a chatgate key: the openai package, curl, and the variables
 * every OpenAI tool reads. */

/** @param {{base: string, key: string, model: string}} p */
export function snippets({ base, key, model }) {
  const python = `from openai import OpenAI

client = OpenAI(base_url="${base}", api_key="${key}")
reply = client.chat.completions.create(
    model="${model}", messages=[{"role": "user", "content": "Hello!"}]
)
print(reply.choices[0].message.content)`;
  const curl = `curl ${base}/chat/completions \\
  -H "Authorization: Bearer ${key}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}]}'`;
  const env = `export OPENAI_BASE_URL="${base}"
export OPENAI_API_KEY="${key}"`;
  return [
    { id: 'python', label: 'Python (openai)', text: python },
    { id: 'curl', label: 'curl', text: curl },
    { id: 'env', label: 'OPENAI_BASE_URL', text: env },
  ];
}
