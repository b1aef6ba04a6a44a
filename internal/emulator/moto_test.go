package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// motoShim is a test-only deserialize middleware for moto's deviations
// (EBS-API.md): List responses carry BlockIndex as a JSON string, report
// BlockSize 512, and come unsorted. It rewrites them into what AWS sends.
func motoShim(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("MotoListShim",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
			middleware.DeserializeOutput, middleware.Metadata, error,
		) {
			out, md, err := next.HandleDeserialize(ctx, in)
			if err != nil {
				return out, md, err
			}
			op := middleware.GetOperationName(ctx)
			resp, ok := out.RawResponse.(*smithyhttp.Response)
			if !ok || resp.StatusCode != 200 || (op != "ListSnapshotBlocks" && op != "ListChangedBlocks") {
				return out, md, err
			}
			raw, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr != nil {
				return out, md, rerr
			}
			var doc map[string]any
			if err := json.Unmarshal(raw, &doc); err != nil {
				return out, md, fmt.Errorf("moto shim: %w", err)
			}
			for _, key := range []string{"Blocks", "ChangedBlocks"} {
				list, _ := doc[key].([]any)
				for _, e := range list {
					m := e.(map[string]any)
					if s, ok := m["BlockIndex"].(string); ok {
						n, err := strconv.Atoi(s)
						if err != nil {
							return out, md, fmt.Errorf("moto shim: BlockIndex %q: %w", s, err)
						}
						m["BlockIndex"] = n
					}
				}
				sort.Slice(list, func(i, j int) bool {
					return list[i].(map[string]any)["BlockIndex"].(int) < list[j].(map[string]any)["BlockIndex"].(int)
				})
			}
			doc["BlockSize"] = block.Size
			fixed, err := json.Marshal(doc)
			if err != nil {
				return out, md, err
			}
			resp.Body = io.NopCloser(bytes.NewReader(fixed))
			resp.ContentLength = int64(len(fixed))
			return out, md, nil
		}), middleware.After)
}

// roundTrip is the scenario run against both servers: write a snapshot
// with the SDK, then list it and fetch every block, verifying checksums.
func roundTrip(t *testing.T, c *ebs.Client, optFns ...func(*ebs.Options)) map[int64][]byte {
	t.Helper()
	st, err := c.StartSnapshot(context.Background(), &ebs.StartSnapshotInput{
		VolumeSize: aws.Int64(1), Description: aws.String("cross-check")}, optFns...)
	if err != nil {
		t.Fatalf("StartSnapshot: %v", err)
	}
	id := aws.ToString(st.SnapshotId)
	putBlocks(t, c, id, map[int64][]byte{0: pattern(1), 5: pattern(2), 6: pattern(3), 2047: pattern(4)}, optFns...)
	l := listAll(t, c, id, 0, 0, optFns...)
	got := make(map[int64][]byte)
	for _, b := range l.blocks {
		f, err := getBlock(c, id, int64(*b.BlockIndex), *b.BlockToken, optFns...)
		if err != nil {
			t.Fatalf("GetSnapshotBlock %d: %v", *b.BlockIndex, err)
		}
		if err := f.verify(); err != nil {
			t.Fatalf("GetSnapshotBlock %d: %v", *b.BlockIndex, err)
		}
		got[int64(*b.BlockIndex)] = f.body
	}
	return got
}

func TestCrossCheckMoto(t *testing.T) {
	motoEP := testenv.Moto(t)
	_, emuEP := emulatortest.Start(t, emulator.Options{})
	fromMoto := roundTrip(t, emulatortest.Client(t, motoEP), func(o *ebs.Options) {
		o.APIOptions = append(o.APIOptions, motoShim)
	})
	fromEmu := roundTrip(t, emulatortest.Client(t, emuEP))
	if len(fromMoto) != 4 || len(fromEmu) != 4 {
		t.Fatalf("moto listed %d blocks, the emulator %d; want 4", len(fromMoto), len(fromEmu))
	}
	for i, b := range fromEmu {
		if !bytes.Equal(b, fromMoto[i]) {
			t.Errorf("block %d: moto and the emulator serve different bytes", i)
		}
	}
}
