//! A reader (and a small writer) of MATLAB MAT-file level 5: numeric matrices, plain or inside
//! `miCOMPRESSED` (zlib) elements, either byte order. Other classes (struct, cell, char,
//! sparse) are skipped. Enough for UTD-MHAD's `d_iner` and `d_skel`.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{HarError, Result};

const HEADER_LEN: usize = 128;
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
/// Numeric array classes (`mxDOUBLE_CLASS` 6 to `mxUINT64_CLASS` 15).
const NUMERIC_CLASSES: std::ops::RangeInclusive<u8> = 6..=15;
const MX_DOUBLE_CLASS: u8 = 6;

/// A numeric matrix read from a MAT file, converted to f64, in MATLAB's column-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    /// Variable name.
    pub name: String,
    /// Dimensions (at least 2).
    pub dims: Vec<usize>,
    /// Real part, column-major (first index fastest).
    pub data: Vec<f64>,
}

impl MatArray {
    /// Element at a multi-index (column-major).
    pub fn at(&self, index: &[usize]) -> f64 {
        let mut offset = 0;
        let mut stride = 1;
        for (i, d) in index.iter().zip(&self.dims) {
            offset += i * stride;
            stride *= d;
        }
        self.data[offset]
    }
}

struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
    /// Offset of `bytes` within the file, for messages (inside compressed data: the element's).
    base: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, problem: impl Into<String>) -> HarError {
        HarError::format(
            self.path,
            format!("element at byte {}", self.base + self.pos),
            problem,
        )
    }

    fn u32_at(&self, at: usize) -> Result<u32> {
        let b: [u8; 4] = self
            .bytes
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.error("truncated"))?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// Reads one tag and returns (type, data slice), advancing past padding.
    fn element(&mut self) -> Result<(u32, &'a [u8])> {
        let first = self.u32_at(self.pos)?;
        if first >> 16 != 0 {
            // Small data element: size in the upper 16 bits, data in the next 4 bytes.
            let (ty, size) = (first & 0xffff, (first >> 16) as usize);
            if size > 4 {
                return Err(self.error(format!("small element of {size} bytes")));
            }
            let data = self
                .bytes
                .get(self.pos + 4..self.pos + 4 + size)
                .ok_or_else(|| self.error("truncated"))?;
            self.pos += 8;
            return Ok((ty, data));
        }
        let size = self.u32_at(self.pos + 4)? as usize;
        let start = self.pos + 8;
        let data = self.bytes.get(start..start + size).ok_or_else(|| {
            self.error(format!(
                "element of {size} bytes runs past the end (truncated file?)"
            ))
        })?;
        self.pos = if ty_is_compressed(first) {
            start + size
        } else {
            start + size.div_ceil(8) * 8
        };
        Ok((first, data))
    }
}

/// Largest ratio of inflated to compressed size accepted (zlib's own maximum is ~1032).
const MAX_INFLATION: u64 = 1100;
/// Largest inflated element accepted (4 GiB).
const MAX_INFLATED: u64 = 4 << 30;

fn ty_is_compressed(ty: u32) -> bool {
    ty == MI_COMPRESSED
}

fn numbers(path: &Path, ty: u32, data: &[u8], big_endian: bool, place: &str) -> Result<Vec<f64>> {
    macro_rules! decode {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            #[allow(clippy::modulo_one)]
            if data.len() % N != 0 {
                return Err(HarError::format(
                    path,
                    place,
                    "data length is not a multiple of its type size",
                ));
            }
            data.chunks_exact(N)
                .map(|c| {
                    let b: [u8; N] = c.try_into().expect("chunk size");
                    (if big_endian {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    }) as f64
                })
                .collect()
        }};
    }
    Ok(match ty {
        MI_INT8 => decode!(i8),
        MI_UINT8 => decode!(u8),
        MI_INT16 => decode!(i16),
        MI_UINT16 => decode!(u16),
        MI_INT32 => decode!(i32),
        MI_UINT32 => decode!(u32),
        MI_SINGLE => decode!(f32),
        MI_DOUBLE => decode!(f64),
        MI_INT64 => decode!(i64),
        MI_UINT64 => decode!(u64),
        other => {
            return Err(HarError::format(
                path,
                place,
                format!("unsupported data type {other}"),
            ))
        }
    })
}

/// Parses one `miMATRIX` element's content; `None` for non-numeric classes.
fn parse_matrix(cur: &mut Cursor) -> Result<Option<MatArray>> {
    let (_, flags) = cur.element()?;
    let flags_word = Cursor {
        path: cur.path,
        bytes: flags,
        pos: 0,
        big_endian: cur.big_endian,
        base: cur.base,
    }
    .u32_at(0)?;
    let class = (flags_word & 0xff) as u8;
    let (dims_ty, dims_data) = cur.element()?;
    let dims: Vec<usize> = numbers(cur.path, dims_ty, dims_data, cur.big_endian, "dimensions")?
        .into_iter()
        .map(|d| {
            if d.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&d) {
                Ok(d as usize)
            } else {
                Err(cur.error(format!("dimension {d} is not a size")))
            }
        })
        .collect::<Result<_>>()?;
    let (_, name) = cur.element()?;
    let name = String::from_utf8_lossy(name).into_owned();
    if !NUMERIC_CLASSES.contains(&class) {
        return Ok(None);
    }
    let (ty, data) = cur.element()?;
    let place = format!("variable `{name}`");
    let data = numbers(cur.path, ty, data, cur.big_endian, &place)?;
    let expected = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if expected != Some(data.len()) {
        return Err(HarError::format(
            cur.path,
            place,
            format!("{} values for dimensions {dims:?} (truncated?)", data.len()),
        ));
    }
    Ok(Some(MatArray { name, dims, data }))
}

/// Parses the elements of `bytes` into arrays.
fn parse_elements(
    path: &Path,
    bytes: &[u8],
    big_endian: bool,
    base: usize,
    out: &mut Vec<MatArray>,
    depth: usize,
) -> Result<()> {
    let mut cur = Cursor {
        path,
        bytes,
        pos: 0,
        big_endian,
        base,
    };
    while cur.pos + 8 <= bytes.len() {
        let at = cur.pos;
        let (ty, data) = cur.element()?;
        match ty {
            MI_COMPRESSED => {
                let place = format!("compressed element at byte {}", base + at);
                if depth >= 1 {
                    return Err(HarError::format(
                        path,
                        place,
                        "compressed inside compressed",
                    ));
                }
                // zlib inflates at most ~1032×: more is a bomb, not data.
                let limit = (data.len() as u64)
                    .saturating_mul(MAX_INFLATION)
                    .min(MAX_INFLATED);
                let mut inflated = Vec::new();
                flate2::read::ZlibDecoder::new(data)
                    .take(limit + 1)
                    .read_to_end(&mut inflated)
                    .map_err(|e| HarError::format(path, &place, e.to_string()))?;
                if inflated.len() as u64 > limit {
                    return Err(HarError::format(
                        path,
                        place,
                        format!("inflates past {limit} bytes from {}", data.len()),
                    ));
                }
                parse_elements(path, &inflated, big_endian, base + at, out, depth + 1)?;
            }
            MI_MATRIX => {
                let mut inner = Cursor {
                    path,
                    bytes: data,
                    pos: 0,
                    big_endian,
                    base: base + at + 8,
                };
                if let Some(array) = parse_matrix(&mut inner)? {
                    out.push(array);
                }
            }
            _ => {} // other top-level elements carry no variables
        }
    }
    Ok(())
}

/// Reads every numeric variable of a MAT v5 file.
pub fn read_mat(path: &Path) -> Result<Vec<MatArray>> {
    let bytes = std::fs::read(path).map_err(|e| HarError::io(path, e))?;
    parse_mat(path, &bytes)
}

/// Parses MAT v5 bytes (`path` names the source in errors).
pub fn parse_mat(path: &Path, bytes: &[u8]) -> Result<Vec<MatArray>> {
    if bytes.len() < HEADER_LEN {
        return Err(HarError::format(
            path,
            "header",
            format!("{} bytes, a MAT v5 header has 128", bytes.len()),
        ));
    }
    if bytes.starts_with(b"MATLAB 7.3") || bytes.starts_with(&[0x89, b'H', b'D', b'F']) {
        return Err(HarError::format(
            path,
            "header",
            "MAT v7.3 (HDF5) is not supported; save with -v7 or -v6",
        ));
    }
    let big_endian = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        _ => {
            return Err(HarError::format(
                path,
                "header",
                "no MAT v5 endian indicator (not a MAT v5 file?)",
            ))
        }
    };
    let mut arrays = Vec::new();
    parse_elements(
        path,
        &bytes[HEADER_LEN..],
        big_endian,
        HEADER_LEN,
        &mut arrays,
        0,
    )?;
    Ok(arrays)
}

/// Reads the numeric variable `name` of a MAT file, with an error naming file and variable.
pub fn read_variable(path: &Path, name: &str) -> Result<MatArray> {
    read_mat(path)?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| HarError::format(path, format!("variable `{name}`"), "not found"))
}

fn push_tag(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(8) * 8, 0);
}

/// Writes double matrices as a little-endian MAT v5 file, each variable zlib-compressed when
/// `compress` (as MATLAB's default `-v7` does). Data is column-major.
pub fn write_mat(path: &Path, variables: &[MatArray], compress: bool) -> Result<()> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    let mut text = b"MATLAB 5.0 MAT-file, written by har-core".to_vec();
    text.resize(116, b' ');
    out.extend_from_slice(&text);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for var in variables {
        let mut matrix = Vec::new();
        push_tag(
            &mut matrix,
            MI_UINT32,
            &[&(MX_DOUBLE_CLASS as u32).to_le_bytes()[..], &[0; 4]].concat(),
        );
        let dims: Vec<u8> = var
            .dims
            .iter()
            .flat_map(|&d| (d as i32).to_le_bytes())
            .collect();
        push_tag(&mut matrix, MI_INT32, &dims);
        push_tag(&mut matrix, MI_INT8, var.name.as_bytes());
        let data: Vec<u8> = var.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        push_tag(&mut matrix, MI_DOUBLE, &data);
        let mut element = Vec::new();
        push_tag(&mut element, MI_MATRIX, &matrix);
        if compress {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(&element)
                .map_err(|e| HarError::io(path, e))?;
            let compressed = encoder.finish().map_err(|e| HarError::io(path, e))?;
            out.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
            out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
            out.extend_from_slice(&compressed);
        } else {
            out.extend_from_slice(&element);
        }
    }
    std::fs::write(path, out).map_err(|e| HarError::io(path, e))
}
