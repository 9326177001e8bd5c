//! The files the demo peer shares: a text file that explains the demo, a
//! picture (a small PNG shipped beside this file) and a folder with two
//! small files, written on the spot.

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
    fs::write(&picture, EVENING_SKY)?;
    let folder = dir.join(FOLDER);
    fs::create_dir_all(&folder)?;
    fs::write(folder.join("Pancakes.md"), PANCAKES)?;
    fs::write(folder.join("Lemonade.md"), LEMONADE)?;
    Ok(vec![welcome, picture, folder])
}

/// A small landscape (320x200): a sky from deep blue to orange, a sun,
/// two ranges of hills. Shipped as a file rather than drawn at run time.
const EVENING_SKY: &[u8] = include_bytes!("evening-sky.png");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_decodes_to_its_pixels() {
        let (w, h) = (320, 200);
        let decoder = png::Decoder::new(std::io::Cursor::new(EVENING_SKY));
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
