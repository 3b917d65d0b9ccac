//! The tokenizer a GGUF file describes, rebuilt with the `tokenizers` crate: byte-level BPE
//! (`tokenizer.ggml.model = gpt2`) from `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`,
//! the pre-tokenizer named by `tokenizer.ggml.pre`, control tokens (token type 3) as special
//! tokens, and the chat template (`tokenizer.chat_template`, Jinja) rendered with minijinja.
//!
//! Pre-tokenizers: `smollm` splits digits one by one, then applies GPT-2's byte-level split
//! (llama.cpp's `LLAMA_VOCAB_PRE_TYPE_SMOLLM`); `gpt2` (and `default`) is GPT-2's split alone.
//! SentencePiece files (`llama`) and other pre-tokenizers are refused with a message.

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use super::{GgufFile, Value};
use crate::{Result, SuiteError};

/// ggml's token type of control tokens (`<|im_start|>`, `<|endoftext|>`, ...).
const CONTROL: i64 = 3;

/// A GGUF model's tokenizer.
pub struct GgufTokenizer {
    inner: Tokenizer,
    /// Prepend the BOS token when encoding a prompt (`tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
    /// Beginning-of-sequence id.
    pub bos: Option<u32>,
    /// End-of-sequence id.
    pub eos: Option<u32>,
    chat_template: Option<String>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("add_bos", &self.add_bos)
            .finish()
    }
}

fn strings<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    match file.get(key)? {
        Value::Array(v) => v
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| file.err(format!("`{key}` holds a non-string value {x}")))
            })
            .collect(),
        other => Err(file.err(format!("`{key}` = {other} is not an array"))),
    }
}

impl GgufTokenizer {
    /// Builds the tokenizer from `file`'s metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(file.err(format!(
                "tokenizer model `{model}` is not supported (only byte-level BPE, `gpt2`; SentencePiece `llama` vocabularies are not)"
            )));
        }
        let pre = file
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tokenizer: PreTokenizerWrapper = match pre {
            "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
            "gpt2" | "default" => byte_level.into(),
            other => {
                return Err(file.err(format!(
                    "pre-tokenizer `{other}` is not supported (supported: smollm, gpt2, default)"
                )))
            }
        };
        let tokens = strings(file, "tokenizer.ggml.tokens")?;
        let merges = strings(file, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| file.err(format!("merge `{m}` is not two tokens")))
            })
            .collect::<Result<Vec<_>>>()?;
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| file.err(format!("BPE vocabulary: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevel::default()));
        let types = match file.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(v)) => v
                .iter()
                .map(|x| match x {
                    Value::I32(t) => i64::from(*t),
                    other => other.as_u64().map_or(0, |t| t as i64),
                })
                .collect(),
            _ => Vec::new(),
        };
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == CONTROL)
            .map(|(s, _)| AddedToken::from(s.to_string(), true))
            .collect();
        inner.add_special_tokens(&special);
        let id = |key: &str| {
            file.metadata
                .get(key)
                .and_then(Value::as_u64)
                .map(|x| x as u32)
        };
        Ok(Self {
            inner,
            add_bos: file
                .metadata
                .get("tokenizer.ggml.add_bos_token")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            chat_template: file
                .metadata
                .get("tokenizer.chat_template")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// Token ids of `text`; special tokens written in the text (e.g. `<|im_start|>`) become
    /// their ids; BOS is prepended when the file asks for it and `add_special` is set.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let mut ids = self
            .inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| SuiteError::Input(format!("tokenizer failed: {e}")))?;
        if add_special && self.add_bos {
            if let Some(b) = self.bos {
                ids.insert(0, b);
            }
        }
        Ok(ids)
    }

    /// The text of `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| SuiteError::Input(format!("tokenizer failed to decode: {e}")))
    }

    /// Vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The chat prompt for `messages` (`(role, content)` pairs) rendered with the file's chat
    /// template, with the assistant's turn opened.
    pub fn chat_prompt(&self, messages: &[(&str, &str)]) -> Result<String> {
        let template = self.chat_template.as_deref().ok_or_else(|| {
            SuiteError::Input("the model file has no tokenizer.chat_template".into())
        })?;
        let mut env = minijinja::Environment::new();
        env.add_template("chat", template)
            .map_err(|e| SuiteError::Input(format!("chat template: {e}")))?;
        let msgs: Vec<_> = messages
            .iter()
            .map(|(role, content)| minijinja::context! { role => role, content => content })
            .collect();
        env.get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! { messages => msgs, add_generation_prompt => true })
            })
            .map_err(|e| SuiteError::Input(format!("chat template: {e}")))
    }
}
