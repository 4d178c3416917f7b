echo hello
ls -la
