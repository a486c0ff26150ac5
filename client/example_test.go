package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/stcache/stcache/client"
)

// The examples run against a real 3-node cluster that the tests start;
// addrs holds its members' HTTP addresses, as
// []string{"127.0.0.1:6000", "127.0.0.1:6001", "127.0.0.1:6002"} would for
// `make cluster`.

func Example() {
	c, err := client.New(addrs)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := c.Set(ctx, "greeting", "hello"); err != nil {
		log.Fatal(err)
	}
	v, err := c.GetStrong(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v)
	// Output: hello
}

// A write whose outcome is unknown is never resent by the client: only the
// caller knows whether writing twice is harmless.
func ExampleClient_Set() {
	c, err := client.New(addrs)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	index, err := c.Set(ctx, "colour", "blue")
	switch {
	case errors.Is(err, client.ErrUnknownOutcome):
		// It may or may not have been applied: read it back, or set again.
		log.Fatal(err)
	case err != nil:
		// Refused or never sent: nothing was written.
		log.Fatal(err)
	}
	fmt.Println("written by log entry", index > 0)
	// Output: written by log entry true
}

func ExampleClient_Get() {
	c, err := client.New(addrs)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err = c.Get(ctx, "no-such-key")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output: true
}

// A stale read from a member's own map may be behind a write that was just
// acknowledged; a strong read never is.
func ExampleClient_GetStrong() {
	c, err := client.New(addrs)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := c.Set(ctx, "counter", "41"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Set(ctx, "counter", "42"); err != nil {
		log.Fatal(err)
	}
	v, err := c.GetStrong(ctx, "counter")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v)
	// Output: 42
}

func ExampleClient_SetTTL() {
	c, err := client.New(addrs)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := c.SetTTL(ctx, "session", "abc", time.Second); err != nil {
		log.Fatal(err)
	}
	v, err := c.GetStrong(ctx, "session")
	fmt.Println(v, err)
	time.Sleep(1100 * time.Millisecond) // past the leader's deadline
	_, err = c.GetStrong(ctx, "session")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// abc <nil>
	// true
}

func ExampleClient_Delete() {
	c, err := client.New(addrs)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := c.Set(ctx, "temp", "x"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Delete(ctx, "temp"); err != nil {
		log.Fatal(err)
	}
	_, err = c.GetStrong(ctx, "temp")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output: true
}

func ExampleClient_Status() {
	c, err := client.New(addrs[:1]) // one member is enough to find the others
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	st, err := c.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(st.Servers), "servers;", len(c.Members()), "members known")
	// Output: 3 servers; 3 members known
}

// A cluster run with -token-file and TLS (make certs): the client trusts
// the CA and sends the token, to members only.
func ExampleNew_tls() {
	c, err := client.New([]string{"10.0.0.1:6000", "10.0.0.2:6000", "10.0.0.3:6000"},
		client.WithCA("certs/ca.pem"),
		client.WithTokenFile("token"),
		client.WithReadTimeout(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Set(ctx, "k", "v"); err != nil {
		log.Fatal(err)
	}
}
