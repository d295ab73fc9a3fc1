//! Avro encoding of events.
//!
//! Default framing is the Avro spec's single-object encoding: `C3 01`, the
//! 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing
//! Canonical Form, then the datum. Any consumer can decode any version it knows
//! without a registry. The Confluent framing (`00` + 4-byte schema id) is
//! recognised here; resolving its id needs a registry (`gridsync-core`).

use std::{collections::HashMap, fmt, sync::LazyLock};

use apache_avro::{
    rabin::Rabin, reader::datum::GenericDatumReader, schema_compatibility::SchemaCompatibility, types::Value,
    writer::datum::GenericDatumWriter, Schema,
};

use crate::events::{Event, EventType};

pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
pub const CONFLUENT_MAGIC: u8 = 0x00;

/// CRC-64-AVRO fingerprint of a schema's Parsing Canonical Form, as written in
/// single-object encoding (little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl Fingerprint {
    pub fn of(schema: &Schema) -> Self {
        let bytes = schema.fingerprint::<Rabin>().bytes;
        let mut out = [0u8; 8];
        out.copy_from_slice(&bytes[..8]);
        Fingerprint(out)
    }
}

/// Room reserved for an encoded event: most fit, so encoding writes without growing its buffer.
const ENCODED_CAPACITY: usize = 1_024;

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// How a record's value is framed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    SingleObject(Fingerprint),
    Confluent { schema_id: u32 },
}

impl Framing {
    /// Reads the framing header; returns it and the datum after it.
    pub fn sniff(bytes: &[u8]) -> Result<(Framing, &[u8]), CodecError> {
        match bytes {
            [] => Err(CodecError::Empty),
            [0xC3, 0x01, rest @ ..] => {
                let (fp, datum) = rest.split_first_chunk::<8>().ok_or(CodecError::Truncated("fingerprint"))?;
                Ok((Framing::SingleObject(Fingerprint(*fp)), datum))
            }
            [CONFLUENT_MAGIC, rest @ ..] => {
                let (id, datum) = rest.split_first_chunk::<4>().ok_or(CodecError::Truncated("schema id"))?;
                Ok((Framing::Confluent { schema_id: u32::from_be_bytes(*id) }, datum))
            }
            [first, ..] => Err(CodecError::UnknownFraming(*first)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("the schema set is invalid: {0}")]
    InvalidSchemaSet(String),
    #[error("empty record value")]
    Empty,
    #[error("record value is truncated inside the {0}")]
    Truncated(&'static str),
    #[error("unknown framing: first byte 0x{0:02X} (expected C3 01 single-object or 00 Confluent)")]
    UnknownFraming(u8),
    #[error("unknown writer schema fingerprint {0}: not a version this build knows")]
    UnknownFingerprint(Fingerprint),
    #[error("Confluent framing (schema id {0}) needs a schema registry; none is configured")]
    RegistryRequired(u32),
    #[error("schema {0} is not a gridsync event")]
    NotAnEvent(String),
    #[error("{event_type}: encoding failed: {source}")]
    Encode {
        event_type: &'static str,
        #[source]
        source: apache_avro::Error,
    },
    #[error("{event_type} (writer schema v{version}): decoding failed: {source}")]
    Decode {
        event_type: &'static str,
        version: u32,
        #[source]
        source: DecodeError,
    },
    #[error("{0} bytes left over after the datum")]
    TrailingBytes(usize),
}

/// What reading a datum ran into: gridsync's reader (the current schema) or apache-avro's
/// (an older writer schema resolved to the current one).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Datum(#[from] crate::datum::DatumError),
    #[error(transparent)]
    Avro(#[from] apache_avro::Error),
}

impl CodecError {
    /// Short machine-readable class, for metrics labels and dead-letter headers.
    pub const fn class(&self) -> &'static str {
        match self {
            CodecError::InvalidSchemaSet(_) => "codec.invalid_schema_set",
            CodecError::Empty => "codec.empty",
            CodecError::Truncated(_) => "codec.truncated",
            CodecError::UnknownFraming(_) => "codec.unknown_framing",
            CodecError::UnknownFingerprint(_) => "codec.unknown_fingerprint",
            CodecError::RegistryRequired(_) => "codec.registry_required",
            CodecError::NotAnEvent(_) => "codec.not_an_event",
            CodecError::Encode { .. } => "codec.encode",
            CodecError::Decode { .. } => "codec.decode",
            CodecError::TrailingBytes(_) => "codec.trailing_bytes",
        }
    }
}

/// One schema version this build can read.
#[derive(Debug)]
pub struct KnownSchema {
    pub event_type: EventType,
    pub version: u32,
    pub fingerprint: Fingerprint,
    pub schema: Schema,
    /// Whether this is the version the Rust types were generated from.
    pub current: bool,
}

/// A decoded record and which writer schema it was written with.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub event: Event,
    pub writer_version: u32,
    pub writer_fingerprint: Fingerprint,
}

static SCHEMAS: LazyLock<Result<Vec<KnownSchema>, String>> = LazyLock::new(load_schemas);
static CODEC: LazyLock<Result<Codec, String>> = LazyLock::new(|| {
    let schemas = SCHEMAS.as_ref().map_err(Clone::clone)?;
    Codec::build(schemas).map_err(|e| e.to_string())
});

/// The process-wide codec; schemas are parsed once.
pub fn codec() -> Result<&'static Codec, CodecError> {
    CODEC.as_ref().map_err(|e| CodecError::InvalidSchemaSet(e.clone()))
}

/// Parses every current and historical schema. Versions: history files are
/// v1..vN; the current schema is the history version with the same
/// fingerprint, or vN+1 when it has not been frozen yet.
fn load_schemas() -> Result<Vec<KnownSchema>, String> {
    let mut out = Vec::new();
    for event_type in EventType::ALL {
        let name = event_type.name();
        let current =
            Schema::parse_str(event_type.current_schema_json()).map_err(|e| format!("{name} current: {e}"))?;
        let current_fp = Fingerprint::of(&current);
        let mut latest = 0;
        let mut current_version = None;
        for (version, json) in event_type.history() {
            let schema = Schema::parse_str(json).map_err(|e| format!("{name} v{version}: {e}"))?;
            let fingerprint = Fingerprint::of(&schema);
            latest = latest.max(*version);
            if fingerprint == current_fp {
                current_version = Some(*version);
                continue;
            }
            out.push(KnownSchema { event_type, version: *version, fingerprint, schema, current: false });
        }
        let version = current_version.unwrap_or(latest + 1);
        out.push(KnownSchema { event_type, version, fingerprint: current_fp, schema: current, current: true });
    }
    Ok(out)
}

/// Encoder and decoder over the known schema versions.
pub struct Codec {
    schemas: &'static [KnownSchema],
    by_fingerprint: HashMap<Fingerprint, usize>,
    current: HashMap<EventType, usize>,
    /// Per known schema: for an older version, a resolving reader (writer → current); the
    /// current version's datums are read by the generated reader (`datum`).
    readers: Vec<Option<GenericDatumReader<'static>>>,
}

impl Codec {
    fn build(schemas: &'static [KnownSchema]) -> Result<Self, CodecError> {
        let invalid = |e: apache_avro::Error| CodecError::InvalidSchemaSet(e.to_string());
        let mut by_fingerprint = HashMap::new();
        let mut current = HashMap::new();
        for (i, known) in schemas.iter().enumerate() {
            if by_fingerprint.insert(known.fingerprint, i).is_some() {
                return Err(CodecError::InvalidSchemaSet(format!(
                    "{} v{} has the fingerprint of another schema",
                    known.event_type.name(),
                    known.version
                )));
            }
            if known.current {
                current.insert(known.event_type, i);
            }
        }
        let mut readers = Vec::with_capacity(schemas.len());
        for known in schemas {
            let reader = if known.current {
                None
            } else {
                let reader_schema = &schemas[current[&known.event_type]].schema;
                Some(GenericDatumReader::builder(&known.schema).reader_schema(reader_schema).build().map_err(invalid)?)
            };
            readers.push(reader);
        }
        Ok(Codec { schemas, by_fingerprint, current, readers })
    }

    /// Every schema version this build knows.
    pub fn known_schemas(&self) -> &'static [KnownSchema] {
        self.schemas
    }

    /// The current (generated-from) schema of an event type.
    pub fn current(&self, event_type: EventType) -> &'static KnownSchema {
        &self.schemas[self.current[&event_type]]
    }

    /// A given version of an event type's schema, if kept.
    pub fn version(&self, event_type: EventType, version: u32) -> Option<&'static KnownSchema> {
        self.schemas.iter().find(|k| k.event_type == event_type && k.version == version)
    }

    pub fn by_fingerprint(&self, fingerprint: Fingerprint) -> Option<&'static KnownSchema> {
        self.by_fingerprint.get(&fingerprint).map(|&i| &self.schemas[i])
    }

    /// The bare Avro datum, written with the current schema.
    pub fn encode_datum(&self, event: &Event) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_CAPACITY);
        self.encode_datum_into(event, &mut out);
        out
    }

    /// Appends the datum of `event` to `out`. It cannot fail: the generated encoder (see
    /// `datum.rs`) writes the generated types, and every value of those is valid for its schema.
    pub fn encode_datum_into(&self, event: &Event, out: &mut Vec<u8>) {
        event.write_datum(out);
    }

    /// Reads a bare datum written with `event_type`'s current schema (the mirror of
    /// [`Codec::encode_datum`]); all of `datum` must be the event's.
    pub fn decode_datum(&self, event_type: EventType, datum: &[u8]) -> Result<Event, CodecError> {
        self.decode_known(self.current[&event_type], datum).map(|decoded| decoded.event)
    }

    /// Single-object encoding with the current schema.
    pub fn encode(&self, event: &Event) -> Vec<u8> {
        let fingerprint = self.current(event.event_type()).fingerprint;
        let mut out = Vec::with_capacity(ENCODED_CAPACITY);
        out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
        out.extend_from_slice(&fingerprint.0);
        self.encode_datum_into(event, &mut out);
        out
    }

    /// Decodes a single-object encoded record written with any known version.
    /// Confluent-framed records need [`Codec::decode_datum_with_writer`] and a registry.
    pub fn decode(&self, bytes: &[u8]) -> Result<Decoded, CodecError> {
        match Framing::sniff(bytes)? {
            (Framing::SingleObject(fingerprint), datum) => {
                let &index =
                    self.by_fingerprint.get(&fingerprint).ok_or(CodecError::UnknownFingerprint(fingerprint))?;
                self.decode_known(index, datum)
            }
            (Framing::Confluent { schema_id }, _) => Err(CodecError::RegistryRequired(schema_id)),
        }
    }

    fn decode_known(&self, index: usize, datum: &[u8]) -> Result<Decoded, CodecError> {
        let known = &self.schemas[index];
        let decode_err = |source: DecodeError| CodecError::Decode {
            event_type: known.event_type.name(),
            version: known.version,
            source,
        };
        let mut rest = datum;
        let event = match &self.readers[index] {
            None => known.event_type.read_datum(&mut rest).map_err(|e| decode_err(e.into()))?,
            Some(reader) => {
                let value = reader.read_value(&mut rest).map_err(|e| decode_err(e.into()))?;
                known.event_type.from_avro_value(&value).map_err(|e| decode_err(e.into()))?
            }
        };
        if !rest.is_empty() {
            return Err(CodecError::TrailingBytes(rest.len()));
        }
        Ok(Decoded { event, writer_version: known.version, writer_fingerprint: known.fingerprint })
    }

    /// Decodes a bare datum whose writer schema came from elsewhere (a schema
    /// registry). A writer schema this build knows takes the fast path; an
    /// unknown one is resolved against the current schema of its record name.
    pub fn decode_datum_with_writer(&self, writer: &Schema, datum: &[u8]) -> Result<Decoded, CodecError> {
        let fingerprint = Fingerprint::of(writer);
        if let Some(&index) = self.by_fingerprint.get(&fingerprint) {
            return self.decode_known(index, datum);
        }
        let name = match writer {
            Schema::Record(record) => record.name.fullname(None),
            other => return Err(CodecError::NotAnEvent(format!("{other:?}"))),
        };
        let event_type = EventType::ALL
            .into_iter()
            .find(|t| name == format!("gridsync.events.{}", t.name()))
            .ok_or_else(|| CodecError::NotAnEvent(name.clone()))?;
        let reader_schema = &self.current(event_type).schema;
        let decode_err = |source: apache_avro::Error| CodecError::Decode {
            event_type: event_type.name(),
            version: 0,
            source: source.into(),
        };
        let reader = GenericDatumReader::builder(writer).reader_schema(reader_schema).build().map_err(decode_err)?;
        let mut rest = datum;
        let value = reader.read_value(&mut rest).map_err(decode_err)?;
        let event = event_type.from_avro_value(&value).map_err(decode_err)?;
        if !rest.is_empty() {
            return Err(CodecError::TrailingBytes(rest.len()));
        }
        Ok(Decoded { event, writer_version: 0, writer_fingerprint: fingerprint })
    }

    /// Reads a single-object record as a generic value through another reader
    /// schema: what a consumer built against an older (or newer) schema sees.
    pub fn decode_as(&self, bytes: &[u8], reader_schema: &Schema) -> Result<Value, CodecError> {
        let (framing, datum) = Framing::sniff(bytes)?;
        let Framing::SingleObject(fingerprint) = framing else {
            return Err(CodecError::UnknownFraming(bytes[0]));
        };
        let known = self.by_fingerprint(fingerprint).ok_or(CodecError::UnknownFingerprint(fingerprint))?;
        let decode_err = |source: apache_avro::Error| CodecError::Decode {
            event_type: known.event_type.name(),
            version: known.version,
            source: source.into(),
        };
        let reader =
            GenericDatumReader::builder(&known.schema).reader_schema(reader_schema).build().map_err(decode_err)?;
        let mut rest = datum;
        reader.read_value(&mut rest).map_err(decode_err)
    }

    /// Writes an event with an older schema version: resolves the current value
    /// to that schema (dropping fields it does not have) and frames it with
    /// that version's fingerprint. What a producer built against that version writes.
    pub fn encode_as(&self, event: &Event, known: &KnownSchema) -> Result<Vec<u8>, CodecError> {
        let encode_err = |source| CodecError::Encode { event_type: known.event_type.name(), source };
        let value = apache_avro::to_value(event).map_err(encode_err)?;
        let value = value.resolve(&known.schema).map_err(encode_err)?;
        let datum = GenericDatumWriter::builder(&known.schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .map_err(encode_err)?;
        let mut out = Vec::with_capacity(10 + datum.len());
        out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
        out.extend_from_slice(&known.fingerprint.0);
        out.extend_from_slice(&datum);
        Ok(out)
    }

    /// Full (backward and forward) compatibility of two schemas.
    pub fn fully_compatible(a: &Schema, b: &Schema) -> bool {
        matches!(SchemaCompatibility::mutual_read(a, b), Ok(apache_avro::schema_compatibility::Compatibility::Full))
    }
}
