// Command proxyhop is the yardstick of paygate's read path: the cheapest
// reverse-proxy hop fasthttp allows. With -upstream it is the upstream, a
// fasthttp server answering every request with the same 300-byte JSON; with
// -listen and -to it is the proxy, one fasthttp.HostClient forwarding every
// request to the upstream and its answer back. bench/readpath runs both
// next to the gateway and compares their requests per second.
//
//	proxyhop -upstream 127.0.0.1:7001
//	proxyhop -listen 127.0.0.1:7000 -to 127.0.0.1:7001
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

// answer is a 300-byte JSON object, about the size of a payment.
var answer = func() []byte {
	b := []byte(`{"payment_id":"pay_0123456789abcdef01234567","status":"succeeded","amount":1500,"currency":"CNY","pad":"`)
	tail := []byte(`"}`)
	b = append(b, bytes.Repeat([]byte("x"), 300-len(b)-len(tail))...)
	return append(b, tail...)
}()

func main() {
	upstream := flag.String("upstream", "", "serve as the upstream on this address")
	listen := flag.String("listen", "", "serve as the proxy on this address")
	to := flag.String("to", "", "the upstream the proxy forwards to")
	flag.Parse()
	var h fasthttp.RequestHandler
	addr := *upstream
	switch {
	case *upstream != "" && *listen == "":
		h = func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(answer)
		}
	case *listen != "" && *to != "" && *upstream == "":
		addr = *listen
		hc := &fasthttp.HostClient{Addr: *to, MaxConns: 4096, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
			DisableHeaderNamesNormalizing: true, DisablePathNormalizing: true}
		h = func(ctx *fasthttp.RequestCtx) {
			ctx.Request.Header.Del("Connection")
			if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error(err.Error(), fasthttp.StatusBadGateway)
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: proxyhop -upstream ADDR | proxyhop -listen ADDR -to ADDR")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h, Concurrency: 100000, DisableHeaderNamesNormalizing: true}
	log.Fatal(srv.Serve(ln))
}
