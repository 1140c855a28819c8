module github.com/redms/redms/services/loader

go 1.26

replace github.com/redms/redms/pkg => ../../pkg
