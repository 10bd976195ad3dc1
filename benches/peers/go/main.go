// Benchmark peer: Go net/http + chi, the design lameduck grew out of.
//
// GET / answers "Hello, World!", GET /health answers 200 via chi's middleware.Heartbeat,
// GET /delay answers "Hello, World!" after time.Sleep for DELAY_MS (default 100) in the handler's
// goroutine (the in-flight run, benches/inflight.sh), GET /blob answers blob, 8 MiB where byte i
// is i % 251, made once at start and shared by every connection (GET /blob?bytes=N, N <= 8 MiB:
// its first N bytes, a slice of the same array; anything else 400; the large-answer and
// slow-reader runs, benches/large.sh and benches/slow_readers.sh).
// Port from argv[1] or PORT (default 8080), address from ADDR (default 127.0.0.1).
// net/http already sets TCP_NODELAY on accepted connections (Go's default for TCP).
// SIGTERM/SIGINT: http.Server.Shutdown (close listeners, close idle connections, wait for
// active ones), bounded by a 30 s context. Run it with GOMAXPROCS=1.
//
// Built offline against Debian's golang-github-go-chi-chi-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o peer-go-chi main.go
//
// In GOPATH mode the package lives at github.com/go-chi/chi (Debian ships chi v5 there), so the
// import path has no /v5 suffix; chi's own /v5 imports resolve through Go's minimal module
// compatibility.
package main

import (
	"context"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-chi/chi"
	"github.com/go-chi/chi/middleware"
)

// blob is the shared body of GET /blob: one array for the whole process.
var blob = func() []byte {
	b := make([]byte, 8*1024*1024)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

// serveBlob answers GET /blob and GET /blob?bytes=N with a prefix of blob, never a copy.
func serveBlob(w http.ResponseWriter, req *http.Request) {
	n := len(blob)
	if q := req.URL.RawQuery; q != "" {
		v, err := strconv.Atoi(strings.TrimPrefix(q, "bytes="))
		if !strings.HasPrefix(q, "bytes=") || err != nil || v < 0 || v > len(blob) {
			http.Error(w, "expected ?bytes=0..8388608", http.StatusBadRequest)
			return
		}
		n = v
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.Write(blob[:n])
}

func main() {
	port := os.Getenv("PORT")
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if port == "" {
		port = "8080"
	}
	host := os.Getenv("ADDR")
	if host == "" {
		host = "127.0.0.1"
	}

	delay := 100 * time.Millisecond
	if ms := os.Getenv("DELAY_MS"); ms != "" {
		n, err := strconv.Atoi(ms)
		if err != nil {
			log.Fatalf("DELAY_MS=%s: expected milliseconds", ms)
		}
		delay = time.Duration(n) * time.Millisecond
	}

	hello := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("Hello, World!"))
	}
	r := chi.NewRouter()
	r.Use(middleware.Heartbeat("/health"))
	r.Get("/", hello)
	r.Get("/blob", serveBlob)
	r.Get("/delay", func(w http.ResponseWriter, req *http.Request) {
		time.Sleep(delay)
		hello(w, req)
	})

	srv := &http.Server{Addr: host + ":" + port, Handler: r}
	done := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Printf("shutdown: %v", err)
		}
		close(done)
	}()
	log.Printf("peer-go-chi listening on %s", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatalf("listen: %v", err)
	}
	<-done
}
