//! Reads the first H.264 track of an MP4 (ISO BMFF): its size, frame rate, parameter sets
//! (`avcC`) and every sample's bytes from the sample tables (`stsz`, `stsc`, `stco`/`co64`,
//! `stts`). Any progressive MP4 with an `avc1` track reads, ours (`mp4.rs`) included.

/// One H.264 track, its samples as Annex B access units (start codes, ready to decode).
#[derive(Debug, Clone, PartialEq)]
pub struct AvcTrack {
    pub width: u16,
    pub height: u16,
    /// Frames per second (media timescale over the first sample's duration).
    pub fps: f64,
    /// SPS and PPS as Annex B (start codes).
    pub parameter_sets: Vec<u8>,
    pub samples: Vec<Vec<u8>>,
}

type Result<T> = std::result::Result<T, String>;

fn be32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| "the MP4 ends inside a box".to_owned())
}

fn be16(b: &[u8], at: usize) -> Result<u16> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_be_bytes)
        .ok_or_else(|| "the MP4 ends inside a box".to_owned())
}

fn be64(b: &[u8], at: usize) -> Result<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| "the MP4 ends inside a box".to_owned())
}

/// The boxes directly inside `data`: (type, body).
fn boxes(data: &[u8]) -> Result<Vec<([u8; 4], &[u8])>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = be32(data, at)? as usize;
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&data[at + 4..at + 8]);
        let (header, size) = match size {
            1 => (
                16,
                usize::try_from(be64(data, at + 8)?).map_err(|e| e.to_string())?,
            ),
            0 => (8, data.len() - at),
            n => (8, n),
        };
        if size < header || at + size > data.len() {
            return Err(format!(
                "box {} claims {size} bytes past the end",
                String::from_utf8_lossy(&kind)
            ));
        }
        out.push((kind, &data[at + header..at + size]));
        at += size;
    }
    Ok(out)
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<&'a [u8]> {
    boxes(data)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b)
        .ok_or_else(|| format!("no {} box", String::from_utf8_lossy(kind)))
}

fn path<'a>(data: &'a [u8], kinds: &[&[u8; 4]]) -> Result<&'a [u8]> {
    kinds.iter().try_fold(data, |d, k| child(d, k))
}

fn annex_b(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(nal);
}

/// The `avc1` sample entry: size, NAL length size and the parameter sets.
fn avc1(stsd: &[u8]) -> Result<(u16, u16, usize, Vec<u8>)> {
    // stsd: version/flags, entry count, then the entries.
    let entries = boxes(stsd.get(8..).ok_or("a short stsd box")?)?;
    let (_, entry) = entries
        .into_iter()
        .find(|(k, _)| k == b"avc1" || k == b"avc3")
        .ok_or("the track is not H.264 (no avc1 entry)")?;
    let (width, height) = (be16(entry, 24)?, be16(entry, 26)?);
    let avcc = child(entry.get(78..).ok_or("a short avc1 box")?, b"avcC")?;
    let nal_len = usize::from(avcc.get(4).ok_or("a short avcC box")? & 3) + 1;
    let mut sets = Vec::new();
    let mut at = 5;
    for mask in [0x1f, 0xff] {
        let n = avcc.get(at).ok_or("a short avcC box")? & mask;
        at += 1;
        for _ in 0..n {
            let len = usize::from(be16(avcc, at)?);
            let nal = avcc.get(at + 2..at + 2 + len).ok_or("a short avcC box")?;
            annex_b(&mut sets, nal);
            at += 2 + len;
        }
    }
    Ok((width, height, nal_len, sets))
}

/// Reads the first H.264 video track of an MP4 file's bytes.
pub fn read_avc(file: &[u8]) -> Result<AvcTrack> {
    let moov = child(file, b"moov")?;
    let trak = boxes(moov)?
        .into_iter()
        .filter(|(k, _)| k == b"trak")
        .find(|(_, t)| {
            path(t, &[b"mdia", b"hdlr"]).is_ok_and(|h| h.get(8..12) == Some(&b"vide"[..]))
        })
        .map(|(_, t)| t)
        .ok_or("the MP4 has no video track")?;
    let mdia = child(trak, b"mdia")?;
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = if mdhd.first() == Some(&1) {
        be32(mdhd, 20)?
    } else {
        be32(mdhd, 12)?
    };
    let stbl = path(mdia, &[b"minf", b"stbl"])?;
    let (width, height, nal_len, parameter_sets) = avc1(child(stbl, b"stsd")?)?;

    let stsz = child(stbl, b"stsz")?;
    let (fixed, count) = (be32(stsz, 4)? as usize, be32(stsz, 8)? as usize);
    let sizes = (0..count)
        .map(|i| match fixed {
            0 => be32(stsz, 12 + 4 * i).map(|s| s as usize),
            n => Ok(n),
        })
        .collect::<Result<Vec<usize>>>()?;
    let chunk_offsets: Vec<u64> = match child(stbl, b"stco") {
        Ok(stco) => (0..be32(stco, 4)? as usize)
            .map(|i| be32(stco, 8 + 4 * i).map(u64::from))
            .collect::<Result<_>>()?,
        Err(_) => {
            let co64 = child(stbl, b"co64")?;
            (0..be32(co64, 4)? as usize)
                .map(|i| be64(co64, 8 + 8 * i))
                .collect::<Result<_>>()?
        }
    };
    // stsc: runs of (first chunk, samples per chunk), 1-based chunks.
    let stsc = child(stbl, b"stsc")?;
    let runs = (0..be32(stsc, 4)? as usize)
        .map(|i| {
            Ok((
                be32(stsc, 8 + 12 * i)? as usize,
                be32(stsc, 12 + 12 * i)? as usize,
            ))
        })
        .collect::<Result<Vec<(usize, usize)>>>()?;
    let mut samples = Vec::with_capacity(count);
    let mut next = 0;
    for (c, &offset) in chunk_offsets.iter().enumerate() {
        let per_chunk = runs
            .iter()
            .rev()
            .find(|(first, _)| *first <= c + 1)
            .map_or(0, |(_, n)| *n);
        let mut at = usize::try_from(offset).map_err(|e| e.to_string())?;
        for _ in 0..per_chunk {
            let Some(&size) = sizes.get(next) else { break };
            let data = file
                .get(at..at + size)
                .ok_or_else(|| format!("sample {next} lies past the end of the file"))?;
            samples.push(access_unit(data, nal_len)?);
            at += size;
            next += 1;
        }
    }
    if samples.len() != count || count == 0 {
        return Err(format!(
            "the sample tables give {} of {count} samples",
            samples.len()
        ));
    }
    let delta = be32(child(stbl, b"stts")?, 12).unwrap_or(0);
    if delta == 0 || timescale == 0 {
        return Err("the MP4 has no frame timing (stts/mdhd)".into());
    }
    let fps = f64::from(timescale) / f64::from(delta);
    Ok(AvcTrack {
        width,
        height,
        fps,
        parameter_sets,
        samples,
    })
}

/// A sample's length-prefixed NAL units as Annex B.
fn access_unit(data: &[u8], nal_len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + 8);
    let mut at = 0;
    while at + nal_len <= data.len() {
        let len = data[at..at + nal_len]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        let nal = data
            .get(at + nal_len..at + nal_len + len)
            .ok_or("a NAL unit runs past its sample")?;
        annex_b(&mut out, nal);
        at += nal_len + len;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::jobs::output::mp4::{Sample, Track, mux};

    #[test]
    fn our_muxed_file_reads_back() {
        let track = Track {
            width: 40,
            height: 24,
            fps: 16,
            sps: vec![0x67, 66, 0, 30],
            pps: vec![0x68, 1],
        };
        let samples = vec![
            Sample {
                nals: vec![vec![0x65, 9, 9], vec![0x65, 8]],
                sync: true,
            },
            Sample {
                nals: vec![vec![0x41, 7]],
                sync: false,
            },
        ];
        let t = read_avc(&mux(&track, &samples).unwrap()).unwrap();
        assert_eq!((t.width, t.height, t.fps), (40, 24, 16.0));
        assert_eq!(
            t.parameter_sets,
            [0, 0, 0, 1, 0x67, 66, 0, 30, 0, 0, 0, 1, 0x68, 1]
        );
        assert_eq!(
            t.samples,
            vec![
                vec![0, 0, 0, 1, 0x65, 9, 9, 0, 0, 0, 1, 0x65, 8],
                vec![0, 0, 0, 1, 0x41, 7]
            ]
        );
        assert!(read_avc(b"not an mp4").is_err());
        let file = mux(&track, &samples).unwrap();
        assert!(read_avc(&file[..file.len() - 10]).is_err(), "a cut file");
    }
}
