//! A minimal MP4 (ISO BMFF) muxer for one H.264 video track: `ftyp`, one `mdat` with every
//! sample, then `moov` (progressive layout, sample tables for one chunk). Samples are access
//! units as length-prefixed NAL units (4 bytes); the SPS and PPS go to the `avcC` box.

/// One encoded frame: its NAL units (no start codes) and whether it is an IDR frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub nals: Vec<Vec<u8>>,
    pub sync: bool,
}

/// The track: size, timing and the parameter sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub width: u16,
    pub height: u16,
    pub fps: u32,
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
}

/// Ticks per frame in the media timescale (`fps * TICKS`).
const TICKS: u32 = 1000;
const MOVIE_TIMESCALE: u32 = 1000;

/// Splits an Annex B byte stream (00 00 01 / 00 00 00 01 start codes) into NAL units.
pub fn split_annex_b(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
        // A 4-byte start code's leading zero (and trailing zero bytes) belong to no NAL.
        while end > s && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            nals.push(stream[s..end].to_vec());
        }
    }
    nals
}

/// The NAL unit type (low five bits of the first byte).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

fn full_box(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.push(version);
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    bx(kind, &b)
}

fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn be16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The whole file. Errors when the samples would pass 4 GiB (32-bit offsets).
pub fn mux(track: &Track, samples: &[Sample]) -> Result<Vec<u8>, String> {
    if samples.is_empty() || track.fps == 0 || track.sps.len() < 4 || track.pps.is_empty() {
        return Err("an MP4 needs at least one frame, a frame rate, an SPS and a PPS".into());
    }
    let mut ftyp = Vec::new();
    ftyp.extend_from_slice(b"isom");
    be32(&mut ftyp, 0x200);
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        ftyp.extend_from_slice(brand);
    }
    let ftyp = bx(b"ftyp", &ftyp);

    let mut data = Vec::new();
    let mut sizes = Vec::with_capacity(samples.len());
    for s in samples {
        let start = data.len();
        for nal in &s.nals {
            be32(&mut data, nal.len() as u32);
            data.extend_from_slice(nal);
        }
        sizes.push((data.len() - start) as u32);
    }
    let mdat_len = u32::try_from(data.len() + 8).map_err(|_| "the video passes 4 GiB")?;
    let chunk_offset = (ftyp.len() + 8) as u32;

    let frames = samples.len() as u32;
    let media_duration = frames * TICKS;
    let movie_duration =
        (u64::from(frames) * u64::from(MOVIE_TIMESCALE) / u64::from(track.fps)) as u32;
    let moov = moov(
        track,
        samples,
        &sizes,
        chunk_offset,
        media_duration,
        movie_duration,
    );

    let mut out = ftyp;
    be32(&mut out, mdat_len);
    out.extend_from_slice(b"mdat");
    out.extend_from_slice(&data);
    out.extend_from_slice(&moov);
    Ok(out)
}

fn moov(
    track: &Track,
    samples: &[Sample],
    sizes: &[u32],
    chunk_offset: u32,
    media_duration: u32,
    movie_duration: u32,
) -> Vec<u8> {
    let mut mvhd = Vec::new();
    for x in [0, 0, MOVIE_TIMESCALE, movie_duration, 0x0001_0000] {
        be32(&mut mvhd, x);
    }
    be16(&mut mvhd, 0x0100);
    mvhd.extend_from_slice(&[0; 10]);
    MATRIX.iter().for_each(|&m| be32(&mut mvhd, m));
    mvhd.extend_from_slice(&[0; 24]);
    be32(&mut mvhd, 2); // next track id
    let mvhd = full_box(b"mvhd", 0, 0, &mvhd);

    let mut tkhd = Vec::new();
    for x in [0, 0, 1, 0, movie_duration, 0, 0] {
        be32(&mut tkhd, x);
    }
    tkhd.extend_from_slice(&[0; 8]); // layer, alternate group, volume, reserved
    MATRIX.iter().for_each(|&m| be32(&mut tkhd, m));
    be32(&mut tkhd, u32::from(track.width) << 16);
    be32(&mut tkhd, u32::from(track.height) << 16);
    let tkhd = full_box(b"tkhd", 0, 3, &tkhd);

    let mut mdhd = Vec::new();
    for x in [0, 0, track.fps * TICKS, media_duration] {
        be32(&mut mdhd, x);
    }
    be16(&mut mdhd, 0x55c4); // "und"
    be16(&mut mdhd, 0);
    let mdhd = full_box(b"mdhd", 0, 0, &mdhd);

    let mut hdlr = vec![0; 4];
    hdlr.extend_from_slice(b"vide");
    hdlr.extend_from_slice(&[0; 12]);
    hdlr.extend_from_slice(b"VideoHandler\0");
    let hdlr = full_box(b"hdlr", 0, 0, &hdlr);

    let vmhd = full_box(b"vmhd", 0, 1, &[0; 8]);
    let url = full_box(b"url ", 0, 1, &[]);
    let mut dref = Vec::new();
    be32(&mut dref, 1);
    dref.extend_from_slice(&url);
    let dinf = bx(b"dinf", &full_box(b"dref", 0, 0, &dref));

    let stbl = [
        stsd(track),
        stts(samples.len() as u32),
        stss(samples),
        stsc(samples.len() as u32),
        stsz(sizes),
        stco(chunk_offset),
    ]
    .concat();
    let minf = bx(b"minf", &[vmhd, dinf, bx(b"stbl", &stbl)].concat());
    let mdia = bx(b"mdia", &[mdhd, hdlr, minf].concat());
    let trak = bx(b"trak", &[tkhd, mdia].concat());
    bx(b"moov", &[mvhd, trak].concat())
}

fn stsd(track: &Track) -> Vec<u8> {
    let sps = &track.sps;
    let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    be16(&mut avcc, sps.len() as u16);
    avcc.extend_from_slice(sps);
    avcc.push(1);
    be16(&mut avcc, track.pps.len() as u16);
    avcc.extend_from_slice(&track.pps);
    if matches!(sps[1], 100 | 110 | 122 | 144) {
        // High profiles: 4:2:0, 8-bit, no SPS extensions.
        avcc.extend_from_slice(&[0xfd, 0xf8, 0xf8, 0]);
    }
    let mut avc1 = vec![0; 6];
    be16(&mut avc1, 1); // data reference index
    avc1.extend_from_slice(&[0; 16]);
    be16(&mut avc1, track.width);
    be16(&mut avc1, track.height);
    be32(&mut avc1, 0x0048_0000);
    be32(&mut avc1, 0x0048_0000);
    be32(&mut avc1, 0);
    be16(&mut avc1, 1); // frames per sample
    let mut name = [0u8; 32];
    let label = b"pallaidium H.264";
    name[0] = label.len() as u8;
    name[1..=label.len()].copy_from_slice(label);
    avc1.extend_from_slice(&name);
    be16(&mut avc1, 0x18);
    be16(&mut avc1, 0xffff);
    avc1.extend_from_slice(&bx(b"avcC", &avcc));
    let mut body = Vec::new();
    be32(&mut body, 1);
    body.extend_from_slice(&bx(b"avc1", &avc1));
    full_box(b"stsd", 0, 0, &body)
}

fn stts(frames: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for x in [1, frames, TICKS] {
        be32(&mut b, x);
    }
    full_box(b"stts", 0, 0, &b)
}

fn stss(samples: &[Sample]) -> Vec<u8> {
    let sync: Vec<u32> = (1..=samples.len() as u32)
        .zip(samples)
        .filter(|(_, s)| s.sync)
        .map(|(i, _)| i)
        .collect();
    let mut b = Vec::new();
    be32(&mut b, sync.len() as u32);
    sync.iter().for_each(|&i| be32(&mut b, i));
    full_box(b"stss", 0, 0, &b)
}

fn stsc(frames: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for x in [1, 1, frames, 1] {
        be32(&mut b, x);
    }
    full_box(b"stsc", 0, 0, &b)
}

fn stsz(sizes: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    be32(&mut b, 0);
    be32(&mut b, sizes.len() as u32);
    sizes.iter().for_each(|&s| be32(&mut b, s));
    full_box(b"stsz", 0, 0, &b)
}

fn stco(offset: u32) -> Vec<u8> {
    let mut b = Vec::new();
    be32(&mut b, 1);
    be32(&mut b, offset);
    full_box(b"stco", 0, 0, &b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_splits_on_both_start_codes() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals = split_annex_b(&s);
        assert_eq!(
            nals,
            vec![vec![0x67, 1, 2], vec![0x68, 3], vec![0x65, 4, 5]]
        );
        let types: Vec<u8> = nals.iter().map(|n| nal_type(n.as_slice())).collect();
        assert_eq!(types, [7, 8, 5]);
    }

    #[test]
    fn the_boxes_nest_and_point_at_the_samples() {
        let track = Track {
            width: 40,
            height: 24,
            fps: 16,
            sps: vec![0x67, 66, 0, 30],
            pps: vec![0x68, 1],
        };
        let samples = vec![
            Sample {
                nals: vec![vec![0x65, 9, 9]],
                sync: true,
            },
            Sample {
                nals: vec![vec![0x41, 7]],
                sync: false,
            },
        ];
        let file = mux(&track, &samples).unwrap();
        assert_eq!(&file[4..8], b"ftyp");
        let ftyp_len = u32::from_be_bytes(file[0..4].try_into().unwrap()) as usize;
        assert_eq!(&file[ftyp_len + 4..ftyp_len + 8], b"mdat");
        // The first sample: a 4-byte length, then the IDR NAL.
        assert_eq!(
            &file[ftyp_len + 8..ftyp_len + 15],
            &[0, 0, 0, 3, 0x65, 9, 9]
        );
        let mdat_len = u32::from_be_bytes(file[ftyp_len..ftyp_len + 4].try_into().unwrap());
        let moov = ftyp_len + mdat_len as usize;
        assert_eq!(&file[moov + 4..moov + 8], b"moov");
        assert_eq!(
            moov + u32::from_be_bytes(file[moov..moov + 4].try_into().unwrap()) as usize,
            file.len()
        );
        assert!(mux(&track, &[]).is_err());
    }
}
