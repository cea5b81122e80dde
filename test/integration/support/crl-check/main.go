// crl-check reads every CRL in a PEM file with Go's crypto/x509 and checks each against the CA
// certificates given: x509.ParseRevocationList, then CheckSignatureFrom. One line per CRL:
//
//	ok number=<n> issuer=<name> next=<RFC 3339> revoked=<hex>,<hex>
//
// Exit status 1 when a CRL does not parse or no CA verifies it. Standard library only: run with
// `go run .` and no network.
package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"
)

func blocks(path, kind string) [][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Println("fail", err)
		os.Exit(1)
	}
	var out [][]byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type == kind {
			out = append(out, block.Bytes)
		}
	}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Println("usage: crl-check CRL.pem CA.pem...")
		os.Exit(2)
	}
	var cas []*x509.Certificate
	for _, path := range os.Args[2:] {
		for _, der := range blocks(path, "CERTIFICATE") {
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				fmt.Println("fail certificate", err)
				os.Exit(1)
			}
			cas = append(cas, cert)
		}
	}
	crls := blocks(os.Args[1], "X509 CRL")
	if len(crls) == 0 {
		fmt.Println("fail no CRL")
		os.Exit(1)
	}
	failed := false
	for _, der := range crls {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			fmt.Println("fail parse", err)
			failed = true
			continue
		}
		var signer *x509.Certificate
		for _, ca := range cas {
			if crl.CheckSignatureFrom(ca) == nil {
				signer = ca
				break
			}
		}
		if signer == nil {
			fmt.Println("fail no CA verifies the CRL of", crl.Issuer)
			failed = true
			continue
		}
		serials := []string{}
		for _, entry := range crl.RevokedCertificateEntries {
			serials = append(serials, fmt.Sprintf("%x", entry.SerialNumber))
		}
		fmt.Printf("ok number=%s issuer=%s next=%s revoked=%s\n", crl.Number, crl.Issuer,
			crl.NextUpdate.UTC().Format(time.RFC3339), strings.Join(serials, ","))
	}
	if failed {
		os.Exit(1)
	}
}
