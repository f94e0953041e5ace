package setup

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// ApplyEnv overrides fields of cfg from environment entries ("KEY=value",
// as os.Environ gives them) named EnvPrefix plus the field's YAML path in
// upper case with "_" between keys: GINGOV_SERVICE_NAME,
// GINGOV_TRACING_SAMPLE_RATIO, GINGOV_RATELIMIT_REDIS_ADDRS (a comma-
// separated list). Lists of rules are not overridable. GINGOV_PROFILE
// selects the profile (see LoadProfile) and is skipped here. An entry whose
// value does not parse is an error naming the variable; unknown GINGOV_
// variables are errors too, so a typo does not pass silently.
func ApplyEnv(cfg *Config, environ []string) error {
	paths := map[string][]int{}
	collectEnvFields(reflect.TypeFor[Config](), strings.TrimSuffix(EnvPrefix, "_"), nil, paths)
	for _, kv := range environ {
		key, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(key, EnvPrefix) || key == ProfileEnv {
			continue
		}
		path, known := paths[key]
		if !known {
			return fmt.Errorf("setup: environment variable %s matches no configuration field", key)
		}
		if err := setFromString(fieldAt(reflect.ValueOf(cfg).Elem(), path), val); err != nil {
			return fmt.Errorf("setup: environment variable %s: %w", key, err)
		}
	}
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

// collectEnvFields maps the variable name of every overridable leaf field
// of t to its index path. Lists of structs (rules) and types of other
// packages (rule documents) are not overridable.
func collectEnvFields(t reflect.Type, prefix string, at []int, out map[string][]int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		path := append(append([]int(nil), at...), i)
		ft := sf.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType:
			if ft.PkgPath() == t.PkgPath() {
				collectEnvFields(ft, name, path, out)
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.String:
		default:
			out[name] = path
		}
	}
}

// fieldAt walks path from v, allocating nil struct pointers on the way
// (GINGOV_RELOAD_NACOS_ADDR creates reload.nacos).
func fieldAt(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

func setFromString(f reflect.Value, s string) error {
	if f.Kind() == reflect.Pointer {
		p := reflect.New(f.Type().Elem())
		if err := setFromString(p.Elem(), s); err != nil {
			return err
		}
		f.Set(p)
		return nil
	}
	if f.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		f.SetFloat(x)
	case reflect.Slice:
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		f.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported field kind %s", f.Kind())
	}
	return nil
}
