//! `tuf-testrepo DIR KEY FILE...`: a TUF repository at DIR signed by KEY (made if absent)
//! whose targets are the FILEs (by file name), valid for a year; prints the root.json path.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tuf_testrepo::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, key, files @ ..] = &args[..] else {
        return Err("usage: tuf-testrepo DIR KEY FILE...".into());
    };
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365);
    let mut repo = tuf_testrepo::Repo::create(dir.as_ref(), key.as_ref(), expires).await?;
    let mut targets = Vec::new();
    for f in files {
        let name = std::path::Path::new(f).file_name().and_then(|n| n.to_str()).ok_or("a target needs a file name")?;
        targets.push((name.to_string(), std::fs::read(f)?));
    }
    let refs: Vec<(&str, &[u8])> = targets.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    repo.publish(&refs, expires).await?;
    println!("{}", std::path::Path::new(dir).join("1.root.json").display());
    Ok(())
}
