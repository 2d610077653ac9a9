// clients.mjs - drive a running `mlxr serve` with the official OpenAI and Ollama JavaScript
// clients: list models, complete, chat (streamed and not: the same seed must give the same
// text), and check that errors surface as the clients' own error types with our status/message.
// usage: node clients.mjs http://127.0.0.1:PORT   (run by tests/cli/test_server.sh)
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import assert from 'node:assert/strict';

const base = process.argv[2];
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
const ollama = new Ollama({ host: base });
const MODEL = 'pydoc-7M-q8_0:latest';
let n = 0;
const step = (name) => { n++; console.log(`ok ${n} ${name}`); };

// --- OpenAI
const models = await openai.models.list();
assert.ok(models.data.some((m) => m.id === MODEL), JSON.stringify(models.data));
step('openai models.list');

const c = await openai.completions.create({ model: MODEL, prompt: 'A dictionary maps', max_tokens: 12, temperature: 0 });
assert.equal(c.choices[0].finish_reason, 'length');
assert.ok(c.choices[0].text.length > 0 && c.usage.completion_tokens === 12);
step('openai completions.create');

const msgs = [{ role: 'user', content: 'Describe the dict type.' }];
const full = await openai.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 30, temperature: 0.8, seed: 42 });
const stream = await openai.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 30, temperature: 0.8, seed: 42, stream: true, stream_options: { include_usage: true } });
let text = '', usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? '';
  if (chunk.usage) usage = chunk.usage;
}
assert.equal(text, full.choices[0].message.content);
assert.deepEqual(usage, full.usage);
step('openai chat (streamed == not streamed)');

await assert.rejects(openai.chat.completions.create({ model: 'no-such-model', messages: msgs }), (e) => {
  assert.ok(e instanceof OpenAI.NotFoundError, String(e));
  assert.equal(e.status, 404);
  assert.equal(e.code, 'model_not_found');
  assert.match(e.message, /no-such-model/);
  return true;
});
await assert.rejects(openai.completions.create({ model: MODEL, prompt: 'x', n: 2 }), (e) => {
  assert.ok(e instanceof OpenAI.BadRequestError, String(e));
  assert.equal(e.param, 'n');
  return true;
});
step('openai errors');

// --- Ollama
const tags = await ollama.list();
assert.ok(tags.models.some((m) => m.name === MODEL), JSON.stringify(tags));
step('ollama list');

const g = await ollama.generate({ model: MODEL, prompt: 'A dictionary maps', options: { temperature: 0, num_predict: 12 } });
assert.ok(g.done && g.response.length > 0 && g.eval_count === 12, JSON.stringify(g));
step('ollama generate');

const chatReq = { model: MODEL, messages: msgs, options: { temperature: 0.8, seed: 7, num_predict: 30 } };
const oc = await ollama.chat(chatReq);
let otext = '';
for await (const part of await ollama.chat({ ...chatReq, stream: true })) otext += part.message.content;
assert.equal(otext, oc.message.content);
step('ollama chat (streamed == not streamed)');

const show = await ollama.show({ model: MODEL });
assert.equal(show.details.family, 'llama');
step('ollama show');

await assert.rejects(ollama.chat({ model: 'no-such-model', messages: msgs }), (e) => {
  assert.equal(e.name, 'ResponseError', String(e));
  assert.equal(e.status_code, 404);
  assert.match(e.error, /no-such-model/);
  return true;
});
step('ollama errors');
console.log(`clients: ${n} steps passed`);
