module alcazar.dev/crlcheck

go 1.22
