Subject: Ticket #{{TICKET}} was closed by the customer

Hello,

{{NAME}} closed ticket #{{TICKET}}, "{{SUBJECT}}".

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
