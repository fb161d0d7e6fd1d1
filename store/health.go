package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Channel health is kept in one small hash per channel and time bucket
// (fields ok, fail, lat and the latency-bin counts l0…l11), under the tag
// {h:<channel>} so that a channel's buckets share a slot and are read in one
// round trip. Every instance adds its local counts; the buckets expire by
// themselves, so memory stays bounded by channels × buckets in 2 windows.

// latField names the hash field of each latency bin; healthFields are all
// the fields a bucket has, in the order ReadHealth reads them.
var latField, healthFields = func() (l [HealthLatencyBins]string, all [3 + HealthLatencyBins]string) {
	all[0], all[1], all[2] = "ok", "fail", "lat"
	for i := range l {
		l[i] = "l" + strconv.Itoa(i)
		all[3+i] = l[i]
	}
	return l, all
}()

// maxHealthBuckets bounds the range of one ReadHealth call.
const maxHealthBuckets = 4096

// AddHealth adds each bucket's counts to the shared ones (HINCRBY) and makes
// the bucket expire ttl from now (0: no expiry), all pipelined in one round
// trip.
func (s *Store) AddHealth(ctx context.Context, buckets []HealthBucket, ttl time.Duration) error {
	if len(buckets) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, b := range buckets {
		k := s.k.health(b.Channel, b.Bucket)
		pipe.HIncrBy(ctx, k, "ok", b.OK)
		pipe.HIncrBy(ctx, k, "fail", b.Fail)
		pipe.HIncrBy(ctx, k, "lat", b.LatencyMS)
		for i, n := range b.Lat {
			if n != 0 {
				pipe.HIncrBy(ctx, k, latField[i], n)
			}
		}
		if ttl > 0 {
			pipe.PExpire(ctx, k, ttl)
		}
	}
	_, err := pipe.Exec(ctx)
	return wrap("add health", err)
}

// ReadHealth returns channel's buckets from..to (bucket indexes, inclusive)
// that have counts, in ascending order, in one round trip.
func (s *Store) ReadHealth(ctx context.Context, channel string, from, to int64) ([]HealthBucket, error) {
	if to < from {
		return nil, nil
	}
	if to-from >= maxHealthBuckets {
		return nil, fmt.Errorf("store: read health: %d buckets, at most %d", to-from+1, maxHealthBuckets)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, 0, to-from+1)
	for b := from; b <= to; b++ {
		cmds = append(cmds, pipe.HMGet(ctx, s.k.health(channel, b), healthFields[:]...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrap("read health", err)
	}
	var out []HealthBucket
	for i, c := range cmds {
		v := c.Val()
		if len(v) != len(healthFields) || (v[0] == nil && v[1] == nil && v[2] == nil) {
			continue
		}
		hb := HealthBucket{Channel: channel, Bucket: from + int64(i), OK: num(v[0]), Fail: num(v[1]), LatencyMS: num(v[2])}
		for j := range hb.Lat {
			hb.Lat[j] = num(v[3+j])
		}
		out = append(out, hb)
	}
	return out, nil
}

func redisZ(at time.Time, member string) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}
