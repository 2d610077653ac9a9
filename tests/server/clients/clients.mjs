// clients.mjs - drive a running `mlxr serve` with the official OpenAI and Ollama JavaScript
// clients: list models, complete, chat (streamed and not: the same seed must give the same
// text), embeddings (OpenAI embeddings.create, Ollama embed / embeddings: dimension, unit norm,
// equal to a curl call), and check that errors surface as the clients' own error types with our
// status/message.
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

// --- Embeddings (pooling: the last token's hidden state; /v1/embeddings and /api/embed are
// unit-length, /api/embeddings is raw)
const TEXT = 'The list type is a mutable sequence.';
const N_EMBD = 256;
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const norm = (v) => Math.sqrt(dot(v, v));
// as float32: JSON carries 9 significant digits (exact for float32 once rounded back), base64
// the float32 bytes themselves
const maxDiff = (a, b) =>
  a.reduce((d, x, i) => Math.max(d, Math.abs(Math.fround(x) - Math.fround(b[i]))), 0);
const isUnit = (v) => v.length === N_EMBD && Math.abs(norm(v) - 1) < 1e-5;

// the client's default request is encoding_format "base64", decoded by the client
const oe = await openai.embeddings.create({ model: MODEL, input: TEXT });
assert.equal(oe.object, 'list');
assert.equal(oe.data.length, 1);
assert.equal(oe.data[0].index, 0);
assert.ok(isUnit(oe.data[0].embedding), `norm ${norm(oe.data[0].embedding)}`);
assert.equal(oe.usage.prompt_tokens, 9); // BOS + 8 text tokens (tests/data/embed)
const vec = oe.data[0].embedding;
const of = await openai.embeddings.create({
  model: MODEL, input: [TEXT, 'A'], encoding_format: 'float',
});
assert.equal(of.data.length, 2);
assert.ok(of.data.every((d, i) => d.index === i && isUnit(d.embedding)));
assert.equal(maxDiff(of.data[0].embedding, vec), 0, 'base64 and float encodings differ');
assert.ok(dot(of.data[1].embedding, vec) < 0.9999, 'two texts gave the same vector');
step('openai embeddings.create (base64 default, float, batch)');

// the same text through curl gives the same vector
const { execFileSync } = await import('node:child_process');
const viaCurl = JSON.parse(execFileSync('curl', ['-s', '-H', 'Content-Type: application/json',
  '--data-binary', JSON.stringify({ model: MODEL, input: TEXT }), `${base}/v1/embeddings`]));
assert.equal(maxDiff(viaCurl.data[0].embedding, vec), 0, 'curl and the openai client differ');
step('embeddings: openai client == curl');

const ee = await ollama.embed({ model: MODEL, input: TEXT });
assert.equal(ee.model, MODEL);
assert.equal(ee.embeddings.length, 1);
assert.ok(isUnit(ee.embeddings[0]));
assert.equal(maxDiff(ee.embeddings[0], vec), 0, '/api/embed and /v1/embeddings differ');
assert.equal(ee.prompt_eval_count, 9);
assert.ok(ee.total_duration > 0);
const eb = await ollama.embed({ model: MODEL, input: [TEXT, 'A'] });
assert.equal(eb.embeddings.length, 2);
assert.equal(maxDiff(eb.embeddings[1], of.data[1].embedding), 0);
step('ollama embed (one, batch)');

const legacy = await ollama.embeddings({ model: MODEL, prompt: TEXT });
assert.equal(legacy.embedding.length, N_EMBD);
assert.ok(norm(legacy.embedding) > 2, `legacy embeddings should be raw, norm ${norm(legacy.embedding)}`);
assert.ok(maxDiff(legacy.embedding.map((x) => x / norm(legacy.embedding)), vec) < 1e-6);
step('ollama embeddings (legacy, not normalized)');

await assert.rejects(openai.embeddings.create({ model: 'no-such-model', input: TEXT }), (e) => {
  assert.ok(e instanceof OpenAI.NotFoundError, String(e));
  assert.equal(e.code, 'model_not_found');
  return true;
});
await assert.rejects(openai.embeddings.create({ model: MODEL, input: TEXT, dimensions: 64 }), (e) => {
  assert.ok(e instanceof OpenAI.BadRequestError, String(e));
  assert.equal(e.param, 'dimensions');
  return true;
});
await assert.rejects(openai.embeddings.create({ model: MODEL, input: '' }), (e) => {
  assert.ok(e instanceof OpenAI.BadRequestError, String(e));
  return true;
});
await assert.rejects(ollama.embed({ model: 'no-such-model', input: TEXT }), (e) => {
  assert.equal(e.name, 'ResponseError', String(e));
  assert.equal(e.status_code, 404);
  assert.match(e.error, /no-such-model/);
  return true;
});
await assert.rejects(ollama.embed({ model: MODEL, input: TEXT.repeat(300), truncate: false }), (e) => {
  assert.equal(e.status_code, 400, String(e));
  assert.match(e.error, /context length/);
  return true;
});
step('embeddings errors');
console.log(`clients: ${n} steps passed`);
