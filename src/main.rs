use clap::Parser;

fn main() {
    let cli = pallaidium::cli::Cli::parse();
    let _ = cli;
}
