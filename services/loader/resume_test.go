package main

import (
	"fmt"
	"testing"

	"github.com/redms/redms/pkg/subject"
)

func TestMatchTable(t *testing.T) {
	tables := []subject.Table{
		{DB: "shop", Schema: "public", Name: "orders"},
		{DB: "crm", Schema: "public", Name: "orders"},
		{DB: "shop", Schema: "sales", Name: "odd.name"},
	}
	tests := []struct {
		arg  string
		want string
	}{
		{"public.orders", "[crm/public.orders shop/public.orders]"},
		{"shop.public.orders", "[shop/public.orders]"},
		{"sales.odd.name", "[shop/sales.odd.name]"},
		{"redms-crm-public-orders", "[crm/public.orders]"},
		{"redms-shop-sales-odd~2Ename", "[shop/sales.odd.name]"},
		{"redms-shop-sales-odd=2Ename", "[shop/sales.odd.name]"},
		{"public.missing", "[]"},
		{"orders", "[]"},
	}
	for _, tt := range tests {
		var names []string
		for _, m := range MatchTable(tt.arg, tables) {
			names = append(names, m.DB+"/"+m.String())
		}
		if got := fmt.Sprint(names); got != tt.want {
			t.Errorf("MatchTable(%q) = %s, want %s", tt.arg, got, tt.want)
		}
	}
}
