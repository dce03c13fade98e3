//! Interoperability with Apache Avro for Java, the reference
//! implementation of single-object encoding: the README's Java example,
//! compiled and run as written, must produce a message Centile decodes, and
//! Java's `BinaryMessageDecoder` (which checks the header against
//! `SchemaNormalization.parsingFingerprint64`) must read what Centile writes.
//!
//! Needs a JDK and Debian's `libavro-java` (Avro 1.8.2, the only Avro for
//! Java reachable here: Maven Central is not); `deploy/local/stack up`,
//! which `scripts/test` runs first, installs both.

mod common;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use centile_events::{encode, Decoded, LatencyEvent, Schemas};
use serde_json::{json, Value};

const JARS: &str = "/usr/share/java";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn classpath(dir: &Path) -> String {
    let mut entries = vec![dir.display().to_string()];
    for jar in [
        "avro.jar",
        "jackson-core-asl.jar",
        "jackson-mapper-asl.jar",
        "slf4j-api.jar",
        "slf4j-nop.jar",
    ] {
        let path = Path::new(JARS).join(jar);
        assert!(
            path.exists(),
            "{} is missing: apt-get install libavro-java",
            path.display()
        );
        entries.push(path.display().to_string());
    }
    entries.join(":")
}

/// The README's Java code block, wrapped into a class that prints the
/// message it encodes as hex, then decodes `args[0]` (a hex message) with
/// `BinaryMessageDecoder` and prints the record.
fn java_source() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("### Publishing from another language")
        .nth(1)
        .expect("README has a section on publishing from another language");
    let code = section
        .split("```java\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the section has a java code block");
    format!(
        r#"import java.io.File;
import java.nio.ByteBuffer;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

public class ReadmeExample {{
  static String hex(ByteBuffer buffer) {{
    StringBuilder out = new StringBuilder();
    while (buffer.hasRemaining()) out.append(String.format("%02x", buffer.get()));
    return out.toString();
  }}

  public static void main(String[] args) throws Exception {{
{code}
    System.out.println(hex(value));
    byte[] centile = new byte[args[0].length() / 2];
    for (int i = 0; i < centile.length; i++)
      centile[i] = (byte) Integer.parseInt(args[0].substring(2 * i, 2 * i + 2), 16);
    GenericRecord read = new BinaryMessageDecoder<GenericRecord>(GenericData.get(), schema).decode(centile);
    System.out.println(read);
  }}
}}
"#
    )
}

#[test]
fn java_binary_message_encoder_and_decoder_interoperate() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("java_interop");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ReadmeExample.java"), java_source()).unwrap();
    let classpath = classpath(&dir);
    let javac = Command::new("javac")
        .args(["-cp", &classpath, "-d"])
        .arg(&dir)
        .arg(dir.join("ReadmeExample.java"))
        .output()
        .expect("javac runs");
    assert!(
        javac.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&javac.stderr)
    );

    let schemas = Schemas::new();
    let sent = LatencyEvent {
        event_id: "rust-0001".into(),
        occurred_at: 1_795_435_200_123,
        tenant_id: "acme".into(),
        model_id: "claude-sonnet-4".into(),
        provider: "anthropic".into(),
        tool: "search".into(),
        parameters: BTreeMap::from([("thinking_mode".into(), "on".into())]),
        response_time_ms: 1234.5,
        success: false,
        error_type: Some("rate_limited".into()),
        input_tokens: None,
        output_tokens: Some(7),
        session_id: Some("conv-j".into()),
    };
    let centile = hex::encode(encode(&schemas, &Decoded::Latency(sent)));

    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = now();
    let java = Command::new("java")
        .args(["-cp", &classpath, "ReadmeExample", &centile])
        .current_dir(root())
        .output()
        .expect("java runs");
    let after = now();
    let stdout = String::from_utf8_lossy(&java.stdout);
    assert!(
        java.status.success(),
        "java: {}{stdout}",
        String::from_utf8_lossy(&java.stderr)
    );
    let mut lines = stdout.lines();

    // What Java's BinaryMessageEncoder wrote, decoded by Centile.
    let bytes = hex::decode(lines.next().expect("the encoded message")).unwrap();
    common::assert_readme_example(&bytes, "java-0001", before, after);

    // What Centile wrote, decoded by Java's BinaryMessageDecoder.
    let read: Value = serde_json::from_str(lines.next().expect("the decoded record")).unwrap();
    assert_eq!(
        read,
        json!({
            "event_id": "rust-0001", "occurred_at": 1_795_435_200_123_i64, "tenant_id": "acme",
            "model_id": "claude-sonnet-4", "provider": "anthropic", "tool": "search",
            "parameters": {"thinking_mode": "on"}, "response_time_ms": 1234.5,
            "success": false, "error_type": "rate_limited", "input_tokens": null,
            "output_tokens": 7, "session_id": "conv-j"
        })
    );
}
