//! The `lameduck` binary: the library's command line with the default handler (`/` answers
//! `Hello, World!`). Everything else lives in the library.

fn main() -> std::process::ExitCode {
    lameduck::cli::main(lameduck::routes::default_handler)
}
