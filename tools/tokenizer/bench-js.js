// tools/tokenizer/bench-js.js REFS FILE [MAX_MB]: time the npm reference encoders (run
// tools/tokenizer-refs.sh first; REFS is its output folder) on the first MAX_MB (default
// all) of a UTF-8 text file, one thread, and print MB/s like `bolt bench tokenizer`. The text
// goes in as chunks of about 10 kB cut after a newline: gpt-3-encoder's encode() grows its
// result with Array.concat, quadratic in the token count, so one big call never finishes.
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const req = createRequire(path.join(path.resolve(process.argv[2]), 'package.json'));
const { Tiktoken } = req('js-tiktoken/lite');
const gpt3 = req('gpt-3-encoder');
const maxBytes = process.argv[4] ? Number(process.argv[4]) * 1e6 : Infinity;
let bytes = fs.readFileSync(process.argv[3]);
if (bytes.length > maxBytes) bytes = bytes.subarray(0, maxBytes);
const text = new TextDecoder('utf-8').decode(bytes);
const mb = bytes.length / 1e6;
const chunks = [];
for (let start = 0; start < text.length;) {
  let end = text.indexOf('\n', start + 10000);
  end = end < 0 ? text.length : end + 1;
  chunks.push(text.slice(start, end));
  start = end;
}

function time(name, encode) {
  const start = process.hrtime.bigint();
  let n = 0;
  for (const chunk of chunks) n += encode(chunk).length;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`${name}: ${mb.toFixed(1)} MB in ${seconds.toFixed(2)} s: ` +
    `${(mb / seconds).toFixed(2)} MB/s, ${n} tokens`);
}
time('gpt-3-encoder (gpt2)', (t) => gpt3.encode(t));
for (const name of ['gpt2', 'cl100k_base', 'o200k_base']) {
  const enc = new Tiktoken(req(`js-tiktoken/ranks/${name}`));
  time(`js-tiktoken ${name}`, (t) => enc.encode(t, 'all'));
}
