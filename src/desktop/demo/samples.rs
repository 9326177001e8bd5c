//! The files the demo peer shares, made on the spot: a text file that
//! explains the demo, a picture (a PNG drawn here, so no image library is
//! needed) and a folder with two small files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The text file's name.
pub const WELCOME: &str = "Welcome to Bitween.txt";
/// The picture's name.
pub const PICTURE: &str = "Evening sky.png";
/// The folder's name.
pub const FOLDER: &str = "Family recipes";

const WELCOME_TEXT: &str = "\
Welcome to Bitween!

You are trying Bitween's demo. Everything in it runs on this computer
only: a private XMPP server, and demo-bob, a contact of yours who shares
this file, a picture and a folder.

What happened when you downloaded this file:
  1. demo-bob published his share list (names, sizes, info hashes and the
     address where he can be reached) on his XMPP account (PEP);
  2. the server passed it to you, because you are contacts of each other;
  3. your click fetched the bytes straight from demo-bob over BitTorrent.
     No tracker, no DHT, no server of ours in between.

Now share something of your own: drop a file on the window (or use
\"Choose files\" under My shares). demo-bob sees it in your list and
downloads it, and the window tells you when he is done.

When you leave the demo (or quit), its server, demo-bob and every file of
the demo are removed; your own settings are never touched. To use Bitween
for real, sign in with your own XMPP account: your contacts install
Bitween too, and you see each other's shares.
";

const PANCAKES: &str = "\
# Pancakes (for 4)

- 250 g flour
- 2 eggs
- 500 ml milk
- a pinch of salt, a spoon of sugar, butter for the pan

Whisk everything smooth, rest 20 minutes, bake thin in a hot buttered pan.
";

const LEMONADE: &str = "\
# Lemonade

- 4 lemons, juiced
- 100 g sugar, dissolved in 200 ml hot water
- 1 l cold sparkling water, ice, mint

Stir, taste, add more lemon. Serve at once.
";

/// Writes the samples into `dir` and returns the three paths to share:
/// the text file, the picture and the folder.
pub fn write(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let welcome = dir.join(WELCOME);
    fs::write(&welcome, WELCOME_TEXT)?;
    let picture = dir.join(PICTURE);
    fs::write(&picture, evening_sky(320, 200))?;
    let folder = dir.join(FOLDER);
    fs::create_dir_all(&folder)?;
    fs::write(folder.join("Pancakes.md"), PANCAKES)?;
    fs::write(folder.join("Lemonade.md"), LEMONADE)?;
    Ok(vec![welcome, picture, folder])
}

/// A small landscape: a sky from deep blue to orange, a sun, two ranges of
/// hills. RGB pixels, row by row.
fn evening_sky(width: u32, height: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    let (sun_x, sun_y, sun_r) = (
        width as f32 * 0.68,
        height as f32 * 0.62,
        height as f32 * 0.14,
    );
    let mix = |a: [f32; 3], b: [f32; 3], t: f32| -> [f32; 3] {
        [
            a[0] + (b[0] - a[0]) * t,
            a[1] + (b[1] - a[1]) * t,
            a[2] + (b[2] - a[2]) * t,
        ]
    };
    for y in 0..height {
        let t = y as f32 / (height - 1) as f32;
        for x in 0..width {
            let fx = x as f32;
            let fy = y as f32;
            let mut c = if t < 0.6 {
                mix([24.0, 32.0, 92.0], [196.0, 82.0, 120.0], t / 0.6)
            } else {
                mix([196.0, 82.0, 120.0], [255.0, 170.0, 80.0], (t - 0.6) / 0.4)
            };
            let d = ((fx - sun_x).powi(2) + (fy - sun_y).powi(2)).sqrt();
            if d < sun_r {
                c = [255.0, 226.0, 140.0];
            } else if d < sun_r * 2.2 {
                c = mix([255.0, 200.0, 120.0], c, (d - sun_r) / (sun_r * 1.2));
            }
            let far = height as f32 * (0.70 + 0.06 * (fx / 37.0).sin() + 0.03 * (fx / 13.0).cos());
            let near = height as f32 * (0.82 + 0.05 * (fx / 53.0 + 1.0).sin());
            if fy > near {
                c = [36.0, 30.0, 62.0];
            } else if fy > far {
                c = [86.0, 52.0, 96.0];
            }
            rgb.extend(c.map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    png_rgb(width, height, &rgb)
}

/// A PNG of 8-bit RGB pixels. The image data is a zlib stream of stored
/// (uncompressed) deflate blocks: larger than it could be, but a few lines
/// instead of a compressor.
pub fn png_rgb(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    assert_eq!(rgb.len(), (width * height * 3) as usize, "pixel count");
    let mut raw = Vec::with_capacity(rgb.len() + height as usize);
    for row in rgb.chunks(width as usize * 3) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut zlib = vec![0x78, 0x01];
    let mut blocks = raw.chunks(65_535).peekable();
    while let Some(block) = blocks.next() {
        zlib.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn the_picture_decodes_to_its_pixels() {
        let (w, h) = (320, 200);
        let png = evening_sky(w, h);
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("a valid PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
        let info = reader.next_frame(&mut pixels).expect("valid image data");
        assert_eq!((info.width, info.height), (w, h));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        // The sky is blue at the top, the hills dark at the bottom.
        assert!(pixels[2] > pixels[0], "top left {:?}", &pixels[..3]);
        let last = pixels.len() - 3;
        assert!(pixels[last] < 80, "bottom right {:?}", &pixels[last..]);
    }

    #[test]
    fn the_samples_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write(dir.path()).unwrap();
        assert_eq!(paths.len(), 3);
        assert!(fs::read_to_string(&paths[0]).unwrap().contains("demo-bob"));
        assert!(paths[1].is_file() && paths[2].join("Pancakes.md").is_file());
    }
}
